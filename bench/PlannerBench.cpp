// The planner's pass: 100/500/2000 VMs in 4/16/64 islands, a quarter of the
// islands heading for contention, every VM flexible (the most candidates).
// Baseline in the same run: scoring every island's and VM's forecast over the
// horizon once, the least any pass must read.
#include <benchmark/benchmark.h>

#include <cmath>

#include "migrate/planner/Contention.h"
#include "migrate/planner/Planner.h"

namespace {

using namespace Atoll;
using namespace Atoll::planner;

constexpr int64_t kStepNs = 300'000'000'000;

forecast::ProfileSnapshot profile(double p50, double spread, int steps = 72) {
  forecast::ProfileSnapshot s;
  s.stepNs = kStepNs;
  s.steps = static_cast<uint32_t>(steps);
  for (int k = 0; k < steps; ++k) {
    const double level = p50 * (1 + 0.1 * std::sin(k / 6.0));
    s.p50[k] = static_cast<float>(level);
    s.p95[k] = static_cast<float>(level + spread);
    s.p99[k] = static_cast<float>(level + 1.5 * spread);
  }
  return s;
}

PlanInput makeInput(int vms, int islands) {
  PlanInput in;
  in.nowNs = 1000 * kStepNs;
  const unsigned cpusPer = 16;
  for (int i = 0; i < islands; ++i) {
    IslandState s;
    s.name = "island" + std::to_string(i);
    for (unsigned c = 0; c < cpusPer; ++c) s.cpus.push_back(unsigned(i) * cpusPer + c);
    s.memNodes = {unsigned(i % 2)};
    const bool hot = i % 4 == 0;
    s.profile = profile(hot ? 15 : 6, hot ? 3 : 1);
    s.observedCores = hot ? 15 : 6;
    in.islands.push_back(std::move(s));
  }
  for (int v = 0; v < vms; ++v) {
    VmState vm;
    vm.workload = uint32_t(v + 1);
    vm.name = "vm" + std::to_string(v);
    vm.island = "island" + std::to_string(v % islands);
    vm.residentBytes = (1ULL + v % 8) << 30;
    vm.demand = profile(0.2 + 0.05 * (v % 7), 0.1);
    vm.observedCores = 0.3;
    in.vms.push_back(std::move(vm));
  }
  return in;
}

void BM_PlanningPass(benchmark::State& state) {
  const PlanInput in = makeInput(int(state.range(0)), int(state.range(1)));
  PlannerConfig config;  // observe: every pass sees the same state
  auto planner = Planner::create(config);
  size_t decisions = 0;
  for (auto _ : state) {
    PlanResult result = planner->plan(in);
    decisions = result.decisions.size();
    benchmark::DoNotOptimize(result);
  }
  state.counters["decisions"] = double(decisions);
}

void BM_ScoreForecastsBaseline(benchmark::State& state) {
  const PlanInput in = makeInput(int(state.range(0)), int(state.range(1)));
  for (auto _ : state) {
    double total = 0;
    for (const auto& island : in.islands)
      total += horizonContention(island.profile, 12, island.capacity(), 0.05).unmetCoreSeconds;
    for (const auto& vm : in.vms)
      total += horizonContention(vm.demand, 12, 1.0, 0.05).unmetCoreSeconds;
    benchmark::DoNotOptimize(total);
  }
}

void sizes(benchmark::internal::Benchmark* b) {
  for (int vms : {100, 500, 2000})
    for (int islands : {4, 16, 64}) b->Args({vms, islands});
}

BENCHMARK(BM_ScoreForecastsBaseline)->Apply(sizes)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_PlanningPass)->Apply(sizes)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
