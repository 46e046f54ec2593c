// atoll forecast: offline use of the forecaster.
//   replay  feeds recorded series through the daemon's forecasting code and
//           writes series,origin_index,horizon,p50,p95 for every row
//   plot    renders actual vs p50 and the p95 band as SVG from a replay
// The live views (`show VM`, `plot VM`) read the daemon's API and come with it.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <thread>

#include "forecast/ModelConfig.h"
#include "forecast/Replay.h"
#include "forecast/ReplayInput.h"
#include "forecast/ReplayOutput.h"
#include "forecast/SvgPlot.h"
#include "tools/Verbs.h"

namespace Atoll::cli {

namespace {

using forecast::InputError;

[[noreturn]] void fail(const InputError& error, ExitCode code) {
  std::cerr << "atoll forecast: " << error.message() << "\n";
  throw CLI::RuntimeError(code);
}

struct ReplayArgs {
  std::string horizons = "1,12,72";
  int season = 288;
  double maxGap = 12;
  std::string out;
  std::vector<std::string> inputs;
};

struct PlotArgs {
  std::string replay;
  std::string series;
  std::string actual;
  std::string svg;
  int horizon = 12;
};

void runReplay(const ReplayArgs& args) {
  auto horizons = forecast::parseHorizonList(args.horizons);
  if (!horizons) fail(horizons.error(), kExitUsage);
  const forecast::ModelConfig config = forecast::replayModelConfig(horizons.value(), args.season);
  if (std::string problem = forecast::ModelShape::validate(config); !problem.empty())
    fail(InputError{"--horizons/--season", 0, args.horizons, problem}, kExitUsage);
  const forecast::ModelShape shape(config);
  auto files = forecast::collectReplayInputs(args.inputs);
  if (!files) fail(files.error(), kExitUsage);

  std::ofstream out(args.out, std::ios::binary | std::ios::trunc);
  if (!out) fail(InputError{args.out, 0, "", "cannot open for writing"}, kExitFailure);
  out << forecast::kReplayHeader;

  // Series are independent: replay them on all cores, write in input order.
  const std::vector<std::string>& paths = files.value();
  const size_t workers = std::max(1u, std::min<unsigned>(std::thread::hardware_concurrency(), 8));
  const forecast::ReplayInputRules rules{args.maxGap};
  for (size_t begin = 0; begin < paths.size(); begin += workers) {
    const size_t end = std::min(paths.size(), begin + workers);
    std::vector<std::string> outputs(end - begin);
    std::vector<std::optional<InputError>> errors(end - begin);
    std::vector<std::thread> threads;
    for (size_t i = begin; i < end; ++i) {
      threads.emplace_back([&, i] {
        auto series = forecast::readReplayCsv(paths[i], rules);
        if (!series) {
          errors[i - begin] = series.error();
          return;
        }
        forecast::replaySeries(series.value(), shape, horizons.value(), outputs[i - begin]);
      });
    }
    for (auto& thread : threads) thread.join();
    for (size_t i = 0; i < outputs.size(); ++i) {
      if (errors[i]) fail(*errors[i], kExitUsage);
      out << outputs[i];
    }
  }
  out.flush();
  if (!out) fail(InputError{args.out, 0, "", "write failed"}, kExitFailure);
}

void runPlot(const PlotArgs& args) {
  auto path = forecast::readReplayOutput(args.replay, args.series, args.horizon);
  if (!path) fail(path.error(), kExitUsage);
  auto actual = forecast::readReplayCsv(args.actual, forecast::ReplayInputRules{1e18});
  if (!actual) fail(actual.error(), kExitUsage);
  forecast::ForecastPlot plot;
  plot.title =
      args.series + ": actual, p50 and p95 at " + std::to_string(args.horizon) + " step(s) ahead";
  plot.actual = actual.value().values;
  plot.p50 = std::move(path.value().p50);
  plot.p95 = std::move(path.value().p95);
  std::ofstream out(args.svg, std::ios::binary | std::ios::trunc);
  out << forecast::renderForecastSvg(plot);
  out.flush();
  if (!out) fail(InputError{args.svg, 0, "", "cannot write"}, kExitFailure);
}

}  // namespace

void addForecastVerb(CLI::App& app) {
  CLI::App* verb = app.add_subcommand("forecast", "Demand forecasts: replay recorded series, plot");
  verb->require_subcommand(1);

  auto replayArgs = std::make_shared<ReplayArgs>();
  CLI::App* replay = verb->add_subcommand(
      "replay", "Replay timestamp,value CSVs through the forecaster; write p50/p95 per origin");
  replay->add_option("--horizons", replayArgs->horizons, "Comma-separated horizons, in steps")
      ->capture_default_str();
  replay->add_option("--season", replayArgs->season, "Season length in steps (0: none)")
      ->capture_default_str();
  replay
      ->add_option("--max-gap", replayArgs->maxGap,
                   "Longest accepted interval between rows, in steps")
      ->capture_default_str();
  replay->add_option("--out", replayArgs->out, "Output CSV")->required();
  replay->add_option("inputs", replayArgs->inputs, "CSV files or directories of them")->required();
  replay->callback([replayArgs] { runReplay(*replayArgs); });

  auto plotArgs = std::make_shared<PlotArgs>();
  CLI::App* plot =
      verb->add_subcommand("plot", "SVG of actual vs p50 and the p95 band, from a replay");
  plot->add_option("--from-replay", plotArgs->replay, "Output of `atoll forecast replay`")
      ->required();
  plot->add_option("--series", plotArgs->series, "Series name in the replay")->required();
  plot->add_option("--actual", plotArgs->actual, "The replayed timestamp,value CSV")->required();
  plot->add_option("--svg", plotArgs->svg, "Output SVG file")->required();
  plot->add_option("--horizon", plotArgs->horizon, "Horizon to plot, in steps")
      ->capture_default_str();
  plot->callback([plotArgs] { runPlot(*plotArgs); });
}

}  // namespace Atoll::cli
