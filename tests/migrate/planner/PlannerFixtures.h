#pragma once
// Constructed forecasts and islands for the planner's tests.
#include <stdexcept>
#include <string>
#include <vector>

#include "migrate/planner/Planner.h"

namespace Atoll::planner::testing {

inline constexpr int64_t kStepNs = 300'000'000'000;
inline constexpr int64_t kSecondNs = 1'000'000'000;

// A profile of `steps` steps, every step p50/p95/p99 as given.
inline forecast::ProfileSnapshot flatProfile(double p50, double p95, double p99, int steps = 12) {
  forecast::ProfileSnapshot s;
  s.stepNs = kStepNs;
  s.steps = static_cast<uint32_t>(steps);
  for (int k = 0; k < steps; ++k) {
    s.p50[k] = static_cast<float>(p50);
    s.p95[k] = static_cast<float>(p95);
    s.p99[k] = static_cast<float>(p99);
  }
  return s;
}

inline numa::CpuList cpuRange(unsigned first, unsigned count) {
  numa::CpuList cpus;
  for (unsigned c = first; c < first + count; ++c) cpus.push_back(c);
  return cpus;
}

inline IslandState island(std::string name, numa::CpuList cpus, forecast::ProfileSnapshot profile,
                          unsigned node = 0) {
  IslandState s;
  s.name = std::move(name);
  s.cpus = std::move(cpus);
  s.memNodes = {node};
  s.profile = profile;
  s.observedCores = profile.steps > 0 ? profile.p50[0] : 0;
  return s;
}

// Island "hot" (8 CPUs, heading for 11-13 cores) and "cool" (8 CPUs, 2 cores).
inline PlanInput hotAndCool(int64_t nowNs = 1000 * kStepNs) {
  PlanInput in;
  in.nowNs = nowNs;
  in.islands.push_back(island("hot", cpuRange(0, 8), flatProfile(10, 12, 13)));
  in.islands.push_back(island("cool", cpuRange(8, 8), flatProfile(2, 2.5, 3)));
  in.host.nodes = {{0, cpuRange(0, 16)}};
  return in;
}

inline PlannerConfig enforcing() {
  PlannerConfig c;
  c.mode = Mode::Enforce;
  return c;
}

inline Planner makePlanner(const PlannerConfig& config) {
  auto planner = Planner::create(config);
  if (!planner) throw std::runtime_error(planner.error().message());
  return std::move(planner.value());
}

}  // namespace Atoll::planner::testing
