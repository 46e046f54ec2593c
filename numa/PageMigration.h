#pragma once
// Where processes' pages sit, by NUMA node, from /proc/PID/numa_maps, and
// how much moved between two such readings: how islands report the effect
// of changing their memory nodes.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "numa/NumaMaps.h"
#include "numa/Topology.h"
#include "util/Result.h"

namespace Atoll::numa {

// Bytes resident on each node (nodes without pages absent).
using NodeBytes = std::map<int, std::uint64_t>;

NodeBytes bytesOnNodes(const std::vector<NumaMapsEntry>& entries);
// Sums the placement of several processes; processes that exited meanwhile
// are skipped (they have nothing left to move).
Result<NodeBytes> processPlacement(const std::vector<pid_t>& pids,
                                   const std::string& procRoot = "/proc");

struct PageMoveReport {
  NodeBytes before;
  NodeBytes after;
  std::uint64_t bytesMoved = 0;  // bytes that left nodes outside the target set
  std::chrono::nanoseconds took{0};
};

// bytesMoved is how much the bytes on nodes outside `targetNodes` dropped.
PageMoveReport comparePlacement(NodeBytes before, NodeBytes after, const CpuList& targetNodes,
                                std::chrono::nanoseconds took);

}  // namespace Atoll::numa
