// atoll forecast: offline use of the forecaster.
//   replay  feeds recorded series through the daemon's forecasting code and
//           writes series,origin_index,horizon,p50,p95 for every row
//   plot    renders actual vs p50 and the p95 band as SVG from a replay
//   show VM   the running atolld's forecast of one workload: short term, then
//             horizon -> p50/p95/p99 and the running accuracy per horizon
//   plot VM   SVG of the workload's recent CPU (actual) against the p50 and
//             p95 band forecast a tick before, from the running atolld
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <optional>
#include <thread>

#include "forecast/ModelConfig.h"
#include "forecast/Replay.h"
#include "forecast/ReplayInput.h"
#include "forecast/ReplayOutput.h"
#include "forecast/SvgPlot.h"
#include "tools/DaemonClient.h"
#include "tools/JsonCells.h"
#include "tools/NumberOptions.h"
#include "tools/Verbs.h"
#include "util/UniqueFd.h"

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
  std::string vm;
  DaemonConnection connection;
  std::string replay;
  std::string series;
  std::string actual;
  std::string svg;
  int horizon = 12;
};

// The replay's output, written to a temporary file beside the target and
// renamed over it only once every input was replayed: a refused input or a
// failed write leaves an earlier output as it was. The temporary file goes
// when the replay fails.
class ReplayOutputFile {
 public:
  explicit ReplayOutputFile(const std::string& out) : out_(out) {
    // A link named as the output keeps pointing at the file it names.
    std::error_code ec;
    std::filesystem::path target = std::filesystem::weakly_canonical(out, ec);
    target_ = ec ? std::filesystem::path(out) : target;
    std::string pattern =
        (target_.parent_path() / ("." + target_.filename().string() + ".XXXXXX")).string();
    fd_.reset(::mkstemp(pattern.data()));
    if (!fd_.valid())
      fail(InputError{out_, 0, pattern, "cannot create the temporary output: " + errnoText()},
           kExitFailure);
    temporary_ = pattern;
    // mkstemp makes it private; the output keeps the mode a plain create (or
    // the earlier output) gives it.
    struct stat existing {};
    mode_t mode = 0;
    if (::stat(target_.c_str(), &existing) == 0) {
      mode = existing.st_mode & 07777;
    } else {
      const mode_t mask = ::umask(0);
      ::umask(mask);
      mode = 0666 & ~mask;
    }
    if (::fchmod(fd_.get(), mode) != 0) {
      const std::string reason = "cannot set the mode of the output: " + errnoText();
      ::unlink(temporary_.c_str());
      fail(InputError{out_, 0, temporary_, reason}, kExitFailure);
    }
  }
  ~ReplayOutputFile() {
    if (!temporary_.empty()) ::unlink(temporary_.c_str());
  }
  ReplayOutputFile(const ReplayOutputFile&) = delete;
  ReplayOutputFile& operator=(const ReplayOutputFile&) = delete;

  void write(std::string_view text) {
    while (!text.empty()) {
      const ssize_t n = ::write(fd_.get(), text.data(), text.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0)
        fail(InputError{out_, 0, temporary_, "write failed: " + errnoText()}, kExitFailure);
      text.remove_prefix(static_cast<size_t>(n));
    }
  }

  void replaceTarget() {
    if (::fsync(fd_.get()) != 0)
      fail(InputError{out_, 0, temporary_, "fsync failed: " + errnoText()}, kExitFailure);
    if (::rename(temporary_.c_str(), target_.c_str()) != 0)
      fail(InputError{out_, 0, temporary_, "cannot rename over the output: " + errnoText()},
           kExitFailure);
    temporary_.clear();
    // The rename itself lasts once the directory is on disk.
    const std::string directory =
        target_.parent_path().empty() ? "." : target_.parent_path().string();
    UniqueFd dir(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir.valid() || ::fsync(dir.get()) != 0)
      fail(InputError{out_, 0, directory, "fsync of the output's directory failed: " + errnoText()},
           kExitFailure);
  }

 private:
  static std::string errnoText() { return std::strerror(errno); }

  std::string out_;
  std::filesystem::path target_;
  std::string temporary_;
  UniqueFd fd_;
};

void runReplay(const ReplayArgs& args) {
  // A gap is measured in first intervals, so a regular series has gaps of 1:
  // a smaller limit refuses every series.
  if (args.maxGap < 1) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", args.maxGap);
    fail(InputError{"--max-gap", 0, text, "must be at least 1 step"}, kExitUsage);
  }
  auto horizons = forecast::parseHorizonList(args.horizons);
  if (!horizons) fail(horizons.error(), kExitUsage);
  const forecast::ModelConfig config = forecast::replayModelConfig(horizons.value(), args.season);
  if (std::string problem = forecast::ModelShape::validate(config); !problem.empty())
    fail(InputError{"--horizons/--season", 0, args.horizons, problem}, kExitUsage);
  const forecast::ModelShape shape(config);
  auto files = forecast::collectReplayInputs(args.inputs);
  if (!files) fail(files.error(), kExitUsage);
  const forecast::ReplayInputRules rules{args.maxGap};
  ReplayOutputFile out(args.out);
  out.write(forecast::kReplayHeader);

  // Series are independent: replay them on all cores, write in input order.
  const std::vector<std::string>& paths = files.value();
  const size_t workers = std::max(1u, std::min<unsigned>(std::thread::hardware_concurrency(), 8));
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
      out.write(outputs[i]);
    }
  }
  out.replaceTarget();
}

struct ShowArgs {
  std::string vm;
  std::string metric = "cpu";
  bool json = false;
  DaemonConnection connection;
};

std::string duration(double seconds) {
  char buffer[32];
  if (seconds >= 3600 && std::fmod(seconds, 3600) == 0)
    std::snprintf(buffer, sizeof buffer, "%.0fh", seconds / 3600);
  else if (seconds >= 60 && std::fmod(seconds, 60) == 0)
    std::snprintf(buffer, sizeof buffer, "%.0fmin", seconds / 60);
  else
    std::snprintf(buffer, sizeof buffer, "%gs", seconds);
  return buffer;
}

void printForecast(const nlohmann::json& f) {
  std::cout << f.value("name", "?") << " (workload " << f.value("workload", 0) << ", "
            << f.value("cgroup", "") << "): " << f.value("metric", "?") << " in "
            << f.value("unit", "?") << "\n";
  const auto& shortTerm = f.value("short_term", nlohmann::json());
  if (shortTerm.is_object())
    std::cout << "next sample:  p50 " << numberCell(shortTerm["p50"]) << ", p95 "
              << numberCell(shortTerm["p95"]) << "\n";
  else
    std::cout << "next sample:  no samples yet\n";
  const auto& profile = f.value("profile", nlohmann::json());
  if (!profile.is_object()) {
    std::cout << "profile:      " << f.value("profile_pending", "not published yet") << "\n";
    return;
  }
  std::map<int, nlohmann::json> accuracy;
  const nlohmann::json rows = profile.value("accuracy", nlohmann::json::array());
  for (const auto& row : rows) accuracy[row.value("horizon_steps", 0)] = row;
  std::cout << std::flush;
  std::printf("%-10s %12s %12s %12s %8s %8s\n", "HORIZON", "P50", "P95", "P99", "MASE", "COVER95");
  const nlohmann::json steps = profile.value("steps", nlohmann::json::array());
  for (const auto& step : steps) {
    const int k = step.value("step", 0);
    // Every tracked horizon, plus the first and the last step.
    if (!accuracy.contains(k) && k != 1 && k != static_cast<int>(steps.size())) continue;
    std::string mase = "-", cover = "-";
    if (auto it = accuracy.find(k); it != accuracy.end()) {
      mase = numberCell(it->second.value("mase", nlohmann::json()), "%.2f");
      cover = numberCell(it->second.value("coverage95", nlohmann::json()), "%.2f");
    }
    std::printf("%-10s %12s %12s %12s %8s %8s\n",
                duration(step.value("horizon_seconds", 0.0)).c_str(),
                numberCell(step["p50"]).c_str(), numberCell(step["p95"]).c_str(),
                numberCell(step["p99"]).c_str(), mase.c_str(), cover.c_str());
  }
  std::fflush(stdout);
}

void runShow(const ShowArgs& args) {
  DaemonClient client(args.connection);
  DaemonReply reply = expectSuccess(
      client.get("/v1/forecast/" + urlEncodeKey(args.vm) + "?metric=" + urlEncodeKey(args.metric)),
      args.json);
  if (args.json)
    std::cout << reply.body.dump(2) << "\n";
  else
    printForecast(reply.body);
}

void runDaemonPlot(const PlotArgs& args) {
  DaemonClient client(args.connection);
  DaemonReply reply =
      expectSuccess(client.get("/v1/history/" + urlEncodeKey(args.vm)), /*json=*/false);
  forecast::ForecastPlot plot;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  auto value = [nan](const nlohmann::json& v) { return v.is_number() ? v.get<double>() : nan; };
  for (const auto& point : reply.body.value("points", nlohmann::json::array())) {
    plot.actual.push_back(value(point["actual"]));
    plot.p50.push_back(value(point["p50"]));
    plot.p95.push_back(value(point["p95"]));
  }
  if (plot.actual.empty()) {
    std::cerr << "atoll forecast: atolld has no history for '" << args.vm << "' yet\n";
    throw CLI::RuntimeError(kExitFailure);
  }
  plot.title = reply.body.value("name", args.vm) +
               ": CPU cores per tick, actual vs p50 and p95 forecast one tick ahead";
  std::ofstream out(args.svg, std::ios::binary | std::ios::trunc);
  out << forecast::renderForecastSvg(plot);
  out.flush();
  if (!out) fail(InputError{args.svg, 0, "", "cannot write"}, kExitFailure);
}

void runPlot(const PlotArgs& args) {
  if (!args.vm.empty()) {
    if (!args.replay.empty() || !args.series.empty() || !args.actual.empty())
      fail(InputError{"atoll forecast plot", 0, args.vm,
                      "give either VM (from atolld) or --from-replay/--series/--actual"},
           kExitUsage);
    return runDaemonPlot(args);
  }
  if (args.replay.empty() || args.series.empty() || args.actual.empty())
    fail(InputError{"atoll forecast plot", 0, "",
                    "give VM (from atolld), or --from-replay, --series and --actual"},
         kExitUsage);
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
  CLI::App* verb = app.add_subcommand(
      "forecast", "Demand forecasts: atolld's per-VM view, replay of recorded series, plots");
  verb->require_subcommand(1);

  auto replayArgs = std::make_shared<ReplayArgs>();
  CLI::App* replay = verb->add_subcommand(
      "replay", "Replay timestamp,value CSVs through the forecaster; write p50/p95 per origin");
  replay->add_option("--horizons", replayArgs->horizons, "Comma-separated horizons, in steps")
      ->capture_default_str();
  replay->add_option("--season", replayArgs->season, "Season length in steps (0: none)")
      ->check(kSignedDecimal)
      ->capture_default_str();
  replay
      ->add_option("--max-gap", replayArgs->maxGap,
                   "Longest accepted interval between rows, in steps (1 or more)")
      ->check(kFiniteNumber)
      ->capture_default_str();
  replay->add_option("--out", replayArgs->out, "Output CSV")->required();
  replay->add_option("inputs", replayArgs->inputs, "CSV files or directories of them")->required();
  replay->callback([replayArgs] { runReplay(*replayArgs); });

  auto showArgs = std::make_shared<ShowArgs>();
  CLI::App* show = verb->add_subcommand(
      "show", "atolld's forecast of one VM: horizon -> p50/p95/p99 and running accuracy");
  show->add_option("vm", showArgs->vm,
                   "VM name, UUID, workload number, cgroup path or its last component")
      ->required();
  show->add_option("--metric", showArgs->metric, "cpu, memory, io or network")
      ->check(CLI::IsMember({"cpu", "memory", "io", "network"}))
      ->capture_default_str();
  show->add_flag("--json", showArgs->json, "Print the daemon's answer as JSON");
  addDaemonOptions(*show, showArgs->connection);
  show->footer("Exit status: 0 ok, 1 unknown VM, 3 atolld not running, 4 permission denied.");
  show->callback([showArgs] { runShow(*showArgs); });

  auto plotArgs = std::make_shared<PlotArgs>();
  CLI::App* plot = verb->add_subcommand(
      "plot", "SVG of actual vs p50 and the p95 band: a VM from atolld, or a replay");
  plot->add_option("vm", plotArgs->vm,
                   "VM name, UUID, workload number, cgroup path or its last component (atolld)");
  addDaemonOptions(*plot, plotArgs->connection);
  plot->add_option("--from-replay", plotArgs->replay, "Output of `atoll forecast replay`");
  plot->add_option("--series", plotArgs->series, "Series name in the replay");
  plot->add_option("--actual", plotArgs->actual, "The replayed timestamp,value CSV");
  plot->add_option("--svg", plotArgs->svg, "Output SVG file")->required();
  plot->add_option("--horizon", plotArgs->horizon, "Horizon to plot, in steps")
      ->check(kSignedDecimal)
      ->capture_default_str();
  plot->callback([plotArgs] { runPlot(*plotArgs); });
}

}  // namespace Atoll::cli
