#pragma once
// A resource island: CPUs and NUMA memory dedicated to one workload family,
// with its own weights and limits. CPUs no island claims form the shared
// island, which must never be empty: the host itself runs there.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "numa/Topology.h"
#include "util/Result.h"

namespace Atoll::numa {

// How an island holds its CPUs (the values of cpuset.cpus.partition).
enum class Exclusivity {
  Shared,    // "member": a cpuset other islands may overlap
  Root,      // "root": an exclusive partition with its own scheduling domain
  Isolated,  // "isolated": exclusive and without load balancing
};

std::string_view exclusivityName(Exclusivity exclusivity);  // "member", "root", "isolated"
std::optional<Exclusivity> parseExclusivity(std::string_view text);
inline bool isExclusive(Exclusivity exclusivity) {
  return exclusivity != Exclusivity::Shared;
}

// Weights and limits, each written only when set.
struct IslandLimits {
  std::optional<unsigned> cpuWeight;        // cpu.weight, 1..10000
  std::optional<std::string> cpuMax;        // cpu.max: "max" or "QUOTA [PERIOD]" in microseconds
  std::optional<std::uint64_t> memoryMin;   // memory.min, bytes
  std::optional<std::uint64_t> memoryLow;   // memory.low, bytes
  std::optional<std::uint64_t> memoryHigh;  // memory.high, bytes
  std::optional<std::uint64_t> memoryMax;   // memory.max, bytes
  std::optional<unsigned> ioWeight;         // io.weight, 1..10000

  bool operator==(const IslandLimits&) const = default;
};

struct Island {
  std::string name;
  CpuList cpus;
  CpuList memNodes;  // NUMA nodes (OS indexes) its memory comes from
  Exclusivity exclusivity = Exclusivity::Shared;
  IslandLimits limits;

  bool operator==(const Island&) const = default;
};

// The name under which the CPUs nobody claims are reported.
inline constexpr std::string_view kSharedIslandName = "shared";

// Island names become cgroup directory names: letters, digits, '-', '_'
// and '.', not starting with '.', at most 64 characters, not "shared".
Result<void> validateIslandName(std::string_view name);
Result<void> validateLimits(const std::string& island, const IslandLimits& limits);

// Checks a complete set of islands against the machine, every rule before
// anything is applied: valid names, no duplicates, CPUs and nodes that
// exist, no CPU in two islands when either is exclusive, no core's SMT
// threads split between two islands, limits in range, and a shared island
// left with at least one CPU. The first problem is returned naming the
// offending value.
Result<void> validateIslands(const Topology& topology, const std::vector<Island>& islands);

// CPUs no island claims.
CpuList sharedCpus(const Topology& topology, const std::vector<Island>& islands);

// Memory nodes an island gets when none are given: the nodes of its CPUs.
CpuList nodesOfCpus(const Topology& topology, const CpuList& cpus);

}  // namespace Atoll::numa
