#pragma once
// What one planning pass sees: the islands, the VMs on them and the host, all
// as plain values the caller gathers (forecaster snapshots, telemetry, the
// island map, the clock). The planner reads nothing else, so a pass is a pure
// function of this input and the planner's own guard and tuning state.
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "forecast/Snapshot.h"
#include "numa/Topology.h"

namespace Atoll::planner {

// Whether and how far a VM may be moved between islands.
enum class Flexibility {
  Pinned,    // never moved
  Critical,  // never moved by the planner; its island is protected as a donor
  Flexible,  // may be moved when the gain pays for the move
};
std::string_view flexibilityName(Flexibility flexibility);
std::optional<Flexibility> parseFlexibility(std::string_view text);

// observe: plan and explain, execute nothing. enforce: taken decisions are
// handed to the caller to execute.
enum class Mode { Observe, Enforce };
std::string_view modeName(Mode mode);
std::optional<Mode> parseMode(std::string_view text);

inline constexpr int64_t kNeverNs = std::numeric_limits<int64_t>::min();

struct IslandState {
  std::string name;
  numa::CpuList cpus;
  // Cores of CPU time the island offers; 0 means one per CPU in `cpus`.
  double capacityCores = 0;
  numa::CpuList memNodes;
  // SLA priority: contention of a higher-priority island weighs more, and an
  // island never gives CPUs to one of lower priority if that puts it at risk.
  int priority = 0;
  std::optional<Mode> modeOverride;
  // The island aggregate's CPU demand profile in cores (the forecaster's
  // island series): p50/p95/p99 per step from originStepNs + stepNs.
  forecast::ProfileSnapshot profile;
  double observedCores = 0;  // measured demand over the last step

  double capacity() const {
    return capacityCores > 0 ? capacityCores : static_cast<double>(cpus.size());
  }
};

struct VmState {
  uint32_t workload = 0;  // the forecaster's workload id
  std::string name;
  std::string island;  // name of the island it runs in
  Flexibility flexibility = Flexibility::Flexible;
  uint64_t residentBytes = 0;
  forecast::ProfileSnapshot demand;  // CPU demand profile, cores
  double observedCores = 0;
  int64_t lastMoveNs = kNeverNs;  // when it last changed island (kNeverNs: never)
};

struct NodeCpus {
  unsigned node = 0;
  numa::CpuList cpus;
};

struct HostState {
  // The topology's CPUs per NUMA node; used to keep moved CPUs near the
  // receiving island's memory when no full topology is given.
  std::vector<NodeCpus> nodes;
  // When set, resizes follow the island allocator's rules (whole cores, the
  // donor's outskirts first, donors on the receiver's L3/node first).
  const numa::Topology* topology = nullptr;
  // Measured page-migration rate, bytes per second (0: unknown, the
  // planner's configured default is used).
  double migrationBytesPerSecond = 0;
};

struct PlanInput {
  int64_t nowNs = 0;
  std::vector<IslandState> islands;
  std::vector<VmState> vms;
  HostState host;
};

}  // namespace Atoll::planner
