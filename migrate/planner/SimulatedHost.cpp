#include "migrate/planner/SimulatedHost.h"

#include <hwloc.h>
#include <hwloc/export.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "numa/IslandAllocator.h"

namespace Atoll::planner {

namespace {

constexpr uint64_t kNodeMemoryBytes = 64ULL << 30;

Error badSpec(std::string_view item, const std::string& why) {
  return Error::invalid("parse --host", "--host", std::string(item), why);
}

}  // namespace

std::string HostSpec::describe() const {
  char text[160];
  std::snprintf(text, sizeof text, "cpus=%u,nodes=%u,islands=%u,smt=%u,l3=%u,load=%.2f,vms=%zu",
                cpus, nodes, islands, smt, l3PerNode, load, vms);
  // seed=0 is left out, so the reports of every earlier replay read the same.
  return seed == 0 ? std::string(text) : std::string(text) + ",seed=" + std::to_string(seed);
}

std::string HostSpec::syntheticDescription() const {
  const unsigned coresPerL3 = cpus / (nodes * l3PerNode * smt);
  return "pack:" + std::to_string(nodes) + " [numa(memory=" + std::to_string(kNodeMemoryBytes) +
         ")] l3:" + std::to_string(l3PerNode) + " core:" + std::to_string(coresPerL3) +
         " pu:" + std::to_string(smt);
}

Result<HostSpec> parseHostSpec(std::string_view text) {
  HostSpec spec;
  while (!text.empty()) {
    const size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos) return badSpec(item, "expected key=value");
    std::string_view key = item.substr(0, eq), value = item.substr(eq + 1);
    if (key == "load") {
      double load = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), load);
      if (ec != std::errc() || end != value.data() + value.size() || !(load > 0) || load > 2)
        return badSpec(item, "load must be a number in (0, 2]");
      spec.load = load;
      continue;
    }
    unsigned long long number = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), number);
    if (ec != std::errc() || end != value.data() + value.size())
      return badSpec(item, "value must be a whole number");
    if (key == "cpus") {
      spec.cpus = static_cast<unsigned>(number);
    } else if (key == "nodes") {
      spec.nodes = static_cast<unsigned>(number);
    } else if (key == "islands") {
      spec.islands = static_cast<unsigned>(number);
    } else if (key == "smt") {
      spec.smt = static_cast<unsigned>(number);
    } else if (key == "l3") {
      spec.l3PerNode = static_cast<unsigned>(number);
    } else if (key == "vms") {
      spec.vms = number;
    } else if (key == "seed") {
      spec.seed = number;
    } else {
      return badSpec(item, "unknown key (cpus, nodes, islands, smt, l3, load, vms, seed)");
    }
  }
  if (spec.cpus < 2 || spec.cpus > 4096) return badSpec("cpus", "cpus must be in 2..4096");
  if (spec.nodes < 1 || spec.smt < 1 || spec.l3PerNode < 1 || spec.smt > 8)
    return badSpec("nodes/smt/l3", "nodes, l3 must be >= 1 and smt in 1..8");
  if (spec.cpus % (spec.nodes * spec.l3PerNode * spec.smt) != 0)
    return badSpec("cpus=" + std::to_string(spec.cpus),
                   "cpus must divide evenly into nodes x l3 x smt");
  const unsigned cores = spec.cpus / spec.smt;
  if (spec.islands < 1 || spec.islands + 1 > cores)
    return badSpec("islands=" + std::to_string(spec.islands),
                   "needs 1..(cores - 1) islands: each needs a core and the host keeps one");
  return spec;
}

Result<numa::Topology> simulatedTopology(const HostSpec& spec) {
  hwloc_topology_t topology;
  if (hwloc_topology_init(&topology) != 0)
    return Error::fromErrno("hwloc_topology_init", "synthetic", errno);
  const std::string description = spec.syntheticDescription();
  if (hwloc_topology_set_synthetic(topology, description.c_str()) != 0 ||
      hwloc_topology_load(topology) != 0) {
    int saved = errno;
    hwloc_topology_destroy(topology);
    return Error::fromErrno("hwloc synthetic topology", "synthetic", saved, description);
  }
  char* xml = nullptr;
  int length = 0;
  if (hwloc_topology_export_xmlbuffer(topology, &xml, &length, 0) != 0) {
    int saved = errno;
    hwloc_topology_destroy(topology);
    return Error::fromErrno("hwloc export xml", "synthetic", saved, description);
  }
  std::string text(xml, length > 0 ? static_cast<size_t>(length - 1) : 0);
  hwloc_free_xmlbuffer(topology, xml);
  hwloc_topology_destroy(topology);
  return numa::Topology::fromXml(text);
}

Result<std::vector<numa::Island>> simulatedIslands(const HostSpec& spec,
                                                   const numa::Topology& topology) {
  const unsigned cores = spec.cpus / spec.smt;
  const unsigned perIsland = (cores - 1) / spec.islands * spec.smt;
  std::vector<numa::Island> islands;
  numa::CpuList claimed;
  for (unsigned i = 0; i < spec.islands; ++i) {
    numa::IslandAllocator allocator(topology, claimed);
    const std::string name = "island" + std::to_string(i);
    auto placement = allocator.place(name, perIsland);
    if (!placement) return placement.error();
    numa::Island island;
    island.name = name;
    island.cpus = placement->cpus;
    island.memNodes = placement->nodes;
    claimed.insert(claimed.end(), island.cpus.begin(), island.cpus.end());
    std::sort(claimed.begin(), claimed.end());
    islands.push_back(std::move(island));
  }
  return islands;
}

}  // namespace Atoll::planner
