#pragma once
// Which workloads make up each island's demand, for the forecaster's island
// aggregates: a workload belongs to an island when its cgroup lies in the
// island's cgroup (<managed root>/<island>/...); every other workload runs in
// the shared island (the CPUs no island claims). The host aggregate holds
// every workload against all CPUs. Pure, so it is tested on constructed
// workloads.
#include <cstdint>
#include <string>
#include <vector>

#include "bpf/collector/WorkloadRegistry.h"
#include "runtime/Config.h"

namespace Atoll {

enum class AggregateKind { Host, Shared, Island };
std::string_view aggregateKindName(AggregateKind kind);  // "host", "shared", "island"

struct IslandAggregate {
  std::string name;
  AggregateKind kind = AggregateKind::Island;
  std::vector<uint32_t> members;  // workload numbers, ascending
  double capacityCores = 0;

  bool operator==(const IslandAggregate&) const = default;
};

// The name under which the host aggregate and the shared island appear.
inline constexpr std::string_view kHostAggregateName = "host";
inline constexpr std::string_view kSharedAggregateName = "shared";

// Host first, then shared, then the islands in configuration order.
std::vector<IslandAggregate> islandAggregates(const std::vector<IslandSettings>& islands,
                                              const std::vector<telemetry::Workload>& workloads,
                                              const std::string& managedRoot, unsigned hostCpus);

}  // namespace Atoll
