#pragma once
// The host's topology with its islands: as text for a terminal and as an
// SVG picture in the spirit of lstopo (packages, NUMA nodes, L3 domains,
// cores and their CPUs, each CPU coloured by the island holding it, and the
// islands' members listed). Pure functions of their input.
#include <sys/types.h>

#include <string>
#include <vector>

#include "numa/Island.h"
#include "numa/Topology.h"

namespace Atoll::numa {

struct IslandMember {
  pid_t pid = 0;
  std::string name;  // process name (comm), may be empty
};

struct IslandView {
  Island island;
  std::vector<IslandMember> members;
};

std::string renderIslandMapText(const Topology& topology, const std::vector<IslandView>& islands);
std::string renderIslandMapSvg(const Topology& topology, const std::vector<IslandView>& islands);

}  // namespace Atoll::numa
