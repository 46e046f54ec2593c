// Forecaster costs, each next to its baseline in the same run:
//   - per-step model update (all candidate models, error tracking, quantiles)
//     plus publication to readers, vs a plain additive Holt-Winters update
//   - per raw sample through the ring, resampling and the amortised step work
//   - bytes per series at a 288-step season
//   - one tick of 10,000 series, and the same with 100 islands scored
// The ratios are printed after the table (see main below).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "forecast/Forecaster.h"
#include "forecast/Seqlock.h"
#include "forecast/SeriesModel.h"
#include "forecast/Snapshot.h"

namespace Atoll::forecast {
namespace {

constexpr int64_t kStepNs = 300'000'000'000;

// A PlanetLab-like series: daily cycle, noise, occasional spikes.
std::vector<double> syntheticSeries(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::exponential_distribution<double> noise(0.3);
  std::vector<double> values(n);
  for (size_t t = 0; t < n; ++t)
    values[t] = 20 + 10 * std::sin(2 * M_PI * double(t % 288) / 288.0) + noise(rng) +
                (t % 97 == 0 ? 40 : 0);
  return values;
}

// The baseline: additive Holt-Winters (no damping, no tracking), one update
// per sample.
struct PlainHoltWinters {
  explicit PlainHoltWinters(int season) : seasonal(std::max(season, 1), 0.0f) {}
  double level = 0, trend = 0;
  std::vector<float> seasonal;
  size_t t = 0;
  double update(double y) {
    float& s = seasonal[t++ % seasonal.size()];
    const double error = y - (level + trend + s);
    level += trend + 0.1 * error;
    trend += 0.01 * error;
    s += static_cast<float>(0.1 * error);
    return level + trend + seasonal[t % seasonal.size()];
  }
};

void BM_PlainHoltWintersUpdate(benchmark::State& state) {
  const int season = static_cast<int>(state.range(0));
  const auto values = syntheticSeries(1 << 16, 1);
  PlainHoltWinters model(season);
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(model.update(values[i++ & 0xFFFF]));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PlainHoltWintersUpdate)->Arg(1)->Arg(288);

// Computes the 6-h profile with quantiles and publishes it to readers
// through its seqlock cell, as the forecaster thread does.
void publishProfile(const SeriesModel& model, std::vector<Quantiles>& profile,
                    ProfileSnapshot& snapshot, SeqlockCell<ProfileSnapshot>& cell) {
  model.profile(profile);
  for (int k = 0; k < 72; ++k) {
    snapshot.p50[k] = static_cast<float>(profile[k].p50);
    snapshot.p95[k] = static_cast<float>(profile[k].p95);
    snapshot.p99[k] = static_cast<float>(profile[k].p99);
  }
  sealSnapshot(snapshot);
  cell.store(snapshot);
}

// Full per-step work of one series that a reader watches: update every
// candidate model, score errors at the tracked horizons, move the quantiles,
// and publish the 6-h profile on every step.
void BM_SeriesStepWithPublication(benchmark::State& state) {
  ModelConfig config;
  config.seasonSteps = static_cast<int>(state.range(0));
  if (config.seasonSteps < 72) config.maxHorizon = 72;
  const ModelShape shape(config);
  SeriesModel model(shape);
  const auto values = syntheticSeries(1 << 16, 2);
  for (int i = 0; i < 4 * 288; ++i) model.update(values[i]);
  std::vector<Quantiles> profile(72);
  auto cell = std::make_unique<SeqlockCell<ProfileSnapshot>>();
  auto snapshot = std::make_unique<ProfileSnapshot>();
  size_t i = 0;
  for (auto _ : state) {
    model.update(values[i++ & 0xFFFF]);
    publishProfile(model, profile, *snapshot, *cell);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SeriesStepWithPublication)->Arg(0)->Arg(288);

// The same for a series nobody reads: published every 12th step (the
// forecaster's default unread cadence), so the profile cost is amortised.
void BM_SeriesStepLazyPublication(benchmark::State& state) {
  ModelConfig config;
  config.seasonSteps = static_cast<int>(state.range(0));
  if (config.seasonSteps < 72) config.maxHorizon = 72;
  const ModelShape shape(config);
  SeriesModel model(shape);
  const auto values = syntheticSeries(1 << 16, 2);
  for (int i = 0; i < 4 * 288; ++i) model.update(values[i]);
  std::vector<Quantiles> profile(72);
  auto cell = std::make_unique<SeqlockCell<ProfileSnapshot>>();
  auto snapshot = std::make_unique<ProfileSnapshot>();
  const int cadence = ForecasterConfig{}.unreadPublishSteps;
  size_t i = 0;
  for (auto _ : state) {
    model.update(values[i++ & 0xFFFF]);
    if (i % cadence == 0) publishProfile(model, profile, *snapshot, *cell);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SeriesStepLazyPublication)->Arg(0)->Arg(288);

// Model update alone (what replay runs per row and horizon set).
void BM_SeriesModelUpdate(benchmark::State& state) {
  ModelConfig config;
  config.seasonSteps = static_cast<int>(state.range(0));
  const ModelShape shape(config);
  SeriesModel model(shape);
  const auto values = syntheticSeries(1 << 16, 3);
  for (int i = 0; i < 4 * 288; ++i) model.update(values[i]);
  size_t i = 0;
  for (auto _ : state) model.update(values[i++ & 0xFFFF]);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SeriesModelUpdate)->Arg(0)->Arg(288);

// Daemon path per raw sample at the 1-s grain, 100 series, one sample each
// per second and one tick per second: push into the ring, drain, validate,
// find the series, resample onto the 5-min step, update the short-term model,
// publish the short-term snapshot, and every 300th sample of a series close a
// 5-min step (model update and lazy profile publication), amortised here.
// Arguments: season steps; who reads every series' short term (see
// ShortTermReader); and whether the producer pushes each sample on its own
// (one claim of the ring each) or one batch per poll.
enum ShortTermReader : int64_t {
  // Nobody: published every unreadShortTermTicks ticks.
  kUnread = 0,
  // A reader on another thread (readShortTerm) every second: published on
  // every tick, which is the forecaster thread's cost of such a series; the
  // reader's own copies are not timed.
  kReadEverySecond = 1,
  // The daemon's forecast history: right after each tick, on the forecaster
  // thread, shortTermsNow hands every series' short term out in one pass
  // (timed: it runs on that thread); nothing is published for it, so
  // publication stays at the unread cadence.
  kHistoryEveryTick = 2,
};

void BM_ForecasterPerRawSample(benchmark::State& state) {
  constexpr uint32_t kSeries = 100;
  ForecasterConfig config;
  config.model.seasonSteps = static_cast<int>(state.range(0));
  const auto reader = static_cast<ShortTermReader>(state.range(1));
  if (reader == kReadEverySecond) config.unreadShortTermTicks = 1;
  const bool batchPush = state.range(2) != 0;
  config.maxSeries = 256;
  config.ringCapacity = 1 << 12;
  auto forecaster = std::move(Forecaster::create(config).value());
  const auto values = syntheticSeries(1 << 16, 4);
  std::vector<Sample> batch(kSeries);
  std::vector<ShortTermForecast> history;
  int64_t second = 0;
  for (auto _ : state) {
    const int64_t ts = second * 1'000'000'000 + 1;
    if (batchPush) {
      for (uint32_t s = 0; s < kSeries; ++s)
        batch[s] = Sample{SeriesKey{s, Metric::Cpu}, ts, values[(second / 300 + s * 131) & 0xFFFF]};
      benchmark::DoNotOptimize(forecaster->ring(0).tryPushBatch(batch));
    } else {
      for (uint32_t s = 0; s < kSeries; ++s)
        forecaster->ring(0).tryPush(
            Sample{SeriesKey{s, Metric::Cpu}, ts, values[(second / 300 + s * 131) & 0xFFFF]});
    }
    forecaster->tick(ts);
    if (reader == kHistoryEveryTick) {
      forecaster->shortTermsNow(Metric::Cpu, history);
      benchmark::DoNotOptimize(history.data());
    }
    ++second;
  }
  if (forecaster->counters().consumed != uint64_t(second) * kSeries)
    state.SkipWithError("samples were dropped");
  state.SetItemsProcessed(state.iterations() * kSeries);
}
BENCHMARK(BM_ForecasterPerRawSample)
    ->ArgNames({"season", "reader", "batch"})
    ->ArgsProduct({{0, 288}, {kReadEverySecond, kUnread, kHistoryEveryTick}, {0, 1}});

void BM_BytesPerSeries(benchmark::State& state) {
  ForecasterConfig config;
  auto forecaster = std::move(Forecaster::create(config).value());
  const ModelShape shape(config.model);
  SeriesModel model(shape);
  for (auto _ : state) benchmark::DoNotOptimize(model.memoryBytes());
  state.counters["model_bytes"] = double(model.memoryBytes());
  state.counters["with_publication_bytes"] = double(forecaster->bytesPerSeries());
}
BENCHMARK(BM_BytesPerSeries);

// One tick of 10,000 series, each closing a 5-min step: model updates and
// profile publication on the forecaster thread (one core). With islands:
// 100 islands of 100 members each, aggregated, forecast and scored.
void tickOfTenThousand(benchmark::State& state, int islands) {
  constexpr uint32_t kSeries = 10'000;
  ForecasterConfig config;
  config.maxSeries = kSeries;
  config.maxIslands = 128;
  config.ringCapacity = 1 << 14;
  auto forecaster = std::move(Forecaster::create(config).value());
  for (int i = 0; i < islands; ++i) {
    IslandSpec spec{"island" + std::to_string(i), {}, 3000.0};
    for (uint32_t m = 0; m < 100; ++m) spec.members.push_back({uint32_t(i * 100) + m, Metric::Cpu});
    (void)forecaster->defineIsland(spec);
  }
  const auto values = syntheticSeries(1 << 16, 5);
  int64_t step = 0;
  auto feedStep = [&] {
    for (uint32_t s = 0; s < kSeries; ++s)
      forecaster->ring(0).tryPush(
          Sample{SeriesKey{s, Metric::Cpu}, step * kStepNs + 1, values[(step + s) & 0xFFFF]});
    ++step;
  };
  for (int warm = 0; warm < 300; ++warm) {  // past one season, so every model runs
    feedStep();
    forecaster->tick(step * kStepNs);
  }
  for (auto _ : state) {
    state.PauseTiming();
    feedStep();
    state.ResumeTiming();
    forecaster->tick(step * kStepNs);
  }
  state.SetItemsProcessed(state.iterations() * kSeries);
}
void BM_TickTenThousandSeries(benchmark::State& state) {
  tickOfTenThousand(state, 0);
}
void BM_TickTenThousandSeriesWith100Islands(benchmark::State& state) {
  tickOfTenThousand(state, 100);
}
BENCHMARK(BM_TickTenThousandSeries)->Unit(benchmark::kMillisecond)->Iterations(20);
BENCHMARK(BM_TickTenThousandSeriesWith100Islands)->Unit(benchmark::kMillisecond)->Iterations(20);

// Keeps each run's CPU time (the machine is shared, so wall time is noisier)
// so main can print the ratios of this run. With --benchmark_repetitions=N
// each benchmark's fastest repetition counts: other load on a shared machine
// only ever adds time, so the minimum is the least disturbed figure.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  std::map<std::string, double> nsPerIteration;
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (run.run_type != Run::RT_Iteration) continue;
      const double ns =
          run.GetAdjustedCPUTime() * (run.time_unit == benchmark::kMillisecond ? 1e6 : 1.0);
      auto [it, inserted] = nsPerIteration.emplace(run.benchmark_name(), ns);
      if (!inserted) it->second = std::min(it->second, ns);
    }
    ConsoleReporter::ReportRuns(runs);
  }
};

}  // namespace
}  // namespace Atoll::forecast

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  Atoll::forecast::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  auto& t = reporter.nsPerIteration;
  auto ratio = [&](const char* what, const char* numerator, const char* denominator) {
    if (t.count(numerator) && t.count(denominator) && t[denominator] > 0)
      std::printf("ratio %-58s %8.2f x  (%s / %s)\n", what, t[numerator] / t[denominator],
                  numerator, denominator);
  };
  ratio("step + publication vs plain HW, no season", "BM_SeriesStepWithPublication/0",
        "BM_PlainHoltWintersUpdate/1");
  ratio("step + publication vs plain HW, 288-step season", "BM_SeriesStepWithPublication/288",
        "BM_PlainHoltWintersUpdate/288");
  ratio("step + lazy publication vs plain HW, no season", "BM_SeriesStepLazyPublication/0",
        "BM_PlainHoltWintersUpdate/1");
  ratio("step + lazy publication vs plain HW, 288-step season", "BM_SeriesStepLazyPublication/288",
        "BM_PlainHoltWintersUpdate/288");
  ratio("model update only vs plain HW, 288-step season", "BM_SeriesModelUpdate/288",
        "BM_PlainHoltWintersUpdate/288");
  // Per raw sample: each iteration carries 100 samples.
  for (const char* season : {"0", "288"}) {
    const std::string plain =
        std::string("BM_PlainHoltWintersUpdate/") + (season[0] == '0' ? "1" : "288");
    for (const auto& [reader, readerName] :
         {std::pair{"1", "read 1/s"}, {"0", "unread"}, {"2", "history"}})
      for (const char* batch : {"0", "1"}) {
        const std::string name = std::string("BM_ForecasterPerRawSample/season:") + season +
                                 "/reader:" + reader + "/batch:" + batch;
        if (t.count(name) && t.count(plain) && t[plain] > 0)
          std::printf(
              "ratio raw sample, season %-3s %-9s %-12s vs plain HW %6.2f x  (%s / 100 / %s)\n",
              season, readerName, batch[0] == '1' ? "batch push" : "single push",
              t[name] / 100 / t[plain], name.c_str(), plain.c_str());
      }
  }
  ratio("tick of 10k series with 100 islands vs without",
        "BM_TickTenThousandSeriesWith100Islands/iterations:20",
        "BM_TickTenThousandSeries/iterations:20");
  benchmark::Shutdown();
  return 0;
}
