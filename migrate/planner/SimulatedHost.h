#pragma once
// The host a replay simulates, from a one-line spec:
//   cpus=64,nodes=2,islands=4[,smt=1][,l3=1][,load=0.6][,vms=0][,seed=0]
// cpus: logical CPUs; nodes: NUMA nodes (one package each); smt: threads per
// core; l3: L3 domains per node; islands: how many islands share the host
// (the shared island keeps one core for the host itself, the rest is split
// evenly by the island allocator, in whole cores); load: the VMs taken from
// the traces are those whose mean CPU demand adds up to this share of the
// islands' capacity; vms: take exactly this many instead (0: by load);
// seed: which VMs are taken and which island each starts in (0: the names'
// own hash order; any other value draws another host from the same traces,
// so a rule is judged on many placements, not on one).
// The topology is hwloc's synthetic machine for that shape, loaded through
// the same Topology class the daemon uses.
#include <string>
#include <string_view>
#include <vector>

#include "numa/Island.h"
#include "numa/Topology.h"
#include "util/Result.h"

namespace Atoll::planner {

struct HostSpec {
  unsigned cpus = 64;
  unsigned nodes = 2;
  unsigned islands = 4;
  unsigned smt = 1;
  unsigned l3PerNode = 1;
  double load = 0.6;
  size_t vms = 0;
  uint64_t seed = 0;

  std::string describe() const;
  // hwloc's synthetic description, e.g. "pack:2 [numa(memory=...)] l3:1 core:32 pu:1".
  std::string syntheticDescription() const;
};

// Errors name the offending item and value.
Result<HostSpec> parseHostSpec(std::string_view text);
Result<numa::Topology> simulatedTopology(const HostSpec& spec);
// The spec's islands ("island0".."islandN-1") placed by the island allocator.
Result<std::vector<numa::Island>> simulatedIslands(const HostSpec& spec,
                                                   const numa::Topology& topology);

}  // namespace Atoll::planner
