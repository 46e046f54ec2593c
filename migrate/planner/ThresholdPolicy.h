#pragma once
// The reactive baseline the planner is judged against: it acts on observed
// utilisation, as OpenStack Watcher's workload-balance strategy and the
// Kubernetes descheduler's LowNodeUtilization do. When an island's demand
// over the last step passes `upper` of its capacity, it takes CPUs from the
// least utilised island that stays at or below `donorMax` after giving, enough
// to bring the receiver back to `target` (whole cores chosen by the island
// allocator, as the planner's resizes are). It obeys the same move budgets
// per window as the planner, and a per-island cooldown equal to the
// planner's dwell. Pure logic, like the planner.
#include <cstdint>
#include <string>
#include <vector>

#include "migrate/planner/PlannerConfig.h"
#include "numa/Topology.h"

namespace Atoll::planner {

struct ThresholdConfig {
  double upper = 0.85;
  double target = 0.7;
  double donorMax = 0.7;
  unsigned maxCpusPerResize = 16;
};

struct ThresholdIsland {
  std::string name;
  numa::CpuList cpus;
  double observedCores = 0;
};

struct ThresholdResize {
  size_t from = 0;  // indexes into the islands given
  size_t to = 0;
  numa::CpuList cpus;
};

class ThresholdPolicy {
 public:
  ThresholdPolicy(ThresholdConfig config, const PlannerConfig& guards);
  // Decides at nowNs; every resize returned is counted against the budgets.
  std::vector<ThresholdResize> decide(int64_t nowNs, const std::vector<ThresholdIsland>& islands,
                                      const numa::Topology* topology);

 private:
  bool allowed(int64_t nowNs, const std::string& island) const;
  ThresholdConfig config_;
  PlannerConfig guards_;
  struct Move {
    int64_t atNs;
    std::string from, to;
  };
  std::vector<Move> moves_;
};

}  // namespace Atoll::planner
