#include "numa/IslandAllocator.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <tuple>

#include "numa/CpuSet.h"
#include "numa/Island.h"

namespace Atoll::numa {

namespace {

constexpr std::size_t kNoL3 = std::numeric_limits<std::size_t>::max();

Error cannotPlace(const std::string& island, unsigned count, std::string detail) {
  return Error::invalid("place island", island, std::to_string(count), std::move(detail));
}

}  // namespace

IslandAllocator::IslandAllocator(const Topology& topology, CpuList claimed)
    : topology_(topology), claimed_(std::move(claimed)) {}

std::size_t IslandAllocator::l3Of(const Core& core) const {
  const auto& domains = topology_.l3Domains();
  for (std::size_t i = 0; i < domains.size(); ++i) {
    if (contains(domains[i].cpus, core.cpus.front())) return i;
  }
  return kNoL3;
}

std::vector<IslandAllocator::FreeCore> IslandAllocator::freeCores(
    const CpuList& allowedNodes) const {
  std::vector<FreeCore> out;
  const auto& cores = topology_.cores();
  for (std::size_t i = 0; i < cores.size(); ++i) {
    if (cores[i].cpus.empty() || !intersectionOf(cores[i].cpus, claimed_).empty()) continue;
    auto node = topology_.nodeOfCpu(cores[i].cpus.front());
    if (!node) continue;
    if (!allowedNodes.empty() && !contains(allowedNodes, *node)) continue;
    out.push_back(FreeCore{i, *node, l3Of(cores[i])});
  }
  std::sort(out.begin(), out.end(), [&](const FreeCore& a, const FreeCore& b) {
    return cores[a.core].cpus.front() < cores[b.core].cpus.front();
  });
  return out;
}

Placement IslandAllocator::finish(CpuList cpus) const {
  std::sort(cpus.begin(), cpus.end());
  Placement out;
  out.nodes = nodesOfCpus(topology_, cpus);
  out.cpus = std::move(cpus);
  return out;
}

Result<Placement> IslandAllocator::place(const std::string& island, unsigned cpuCount,
                                         const CpuList& allowedNodes) const {
  if (cpuCount == 0) return cannotPlace(island, cpuCount, "an island needs at least one CPU");
  const auto& cores = topology_.cores();
  auto threads = [&](const std::vector<FreeCore>& group) {
    std::size_t total = 0;
    for (const auto& free : group) total += cores[free.core].cpus.size();
    return total;
  };
  // Every free core may be chosen; the choice is refused below when it would
  // take the last one, which the shared island keeps.
  const std::size_t freeCoreCount = freeCores({}).size();
  std::vector<FreeCore> usable = freeCores(allowedNodes);
  if (threads(usable) < cpuCount)
    return cannotPlace(island, cpuCount,
                       "asked for " + std::to_string(cpuCount) + " CPUs but only " +
                           std::to_string(threads(usable)) + " are free in whole cores");
  auto leavesShared = [&](const CpuList& cpus) -> Result<Placement> {
    std::size_t usedCores = 0;
    for (const auto& core : cores)
      if (!core.cpus.empty() && contains(cpus, core.cpus.front())) ++usedCores;
    if (usedCores >= freeCoreCount)
      return cannotPlace(island, cpuCount,
                         "asked for " + std::to_string(cpuCount) +
                             " CPUs, which would take every free core and leave the shared "
                             "island empty");
    return finish(cpus);
  };

  // Takes cores from `group` in order until cpuCount threads are covered.
  auto take = [&](const std::vector<FreeCore>& group) {
    CpuList cpus;
    for (const auto& free : group) {
      if (cpus.size() >= cpuCount) break;
      cpus.insert(cpus.end(), cores[free.core].cpus.begin(), cores[free.core].cpus.end());
    }
    return cpus;
  };
  // Groups cores by a key; returns the tightest group that fits, ties to the
  // lowest first CPU (groups are visited in CPU order).
  auto tightest = [&](auto keyOf) -> std::optional<std::vector<FreeCore>> {
    std::map<std::size_t, std::vector<FreeCore>> groups;
    std::vector<std::size_t> order;
    for (const auto& free : usable) {
      auto key = keyOf(free);
      if (!groups.count(key)) order.push_back(key);
      groups[key].push_back(free);
    }
    std::optional<std::vector<FreeCore>> best;
    for (auto key : order) {
      const auto& group = groups[key];
      if (threads(group) < cpuCount) continue;
      if (!best || threads(group) < threads(*best)) best = group;
    }
    return best;
  };
  // Within a node, fill from the L3 domains with most free cores first, so
  // the island touches as few caches as possible.
  auto byFullestL3 = [&](std::vector<FreeCore> group) {
    std::map<std::size_t, std::size_t> freeInL3;
    for (const auto& free : group) ++freeInL3[free.l3];
    std::stable_sort(group.begin(), group.end(), [&](const FreeCore& a, const FreeCore& b) {
      return freeInL3[a.l3] > freeInL3[b.l3];
    });
    return group;
  };

  if (auto inL3 = tightest([](const FreeCore& free) { return free.l3; });
      inL3 && inL3->front().l3 != kNoL3)
    return leavesShared(take(*inL3));
  if (auto inNode = tightest([](const FreeCore& free) { return std::size_t{free.node}; }))
    return leavesShared(take(byFullestL3(*inNode)));

  // Span: from each start node add the nearest nodes until the island fits;
  // prefer fewer nodes, then the smaller total distance, then the lower start.
  CpuList nodes;
  for (const auto& free : usable) nodes = unionOf(nodes, CpuList{free.node});
  std::optional<std::tuple<std::size_t, unsigned, unsigned>> bestCost;
  std::vector<unsigned> bestOrder;
  for (unsigned start : nodes) {
    std::vector<unsigned> order(nodes.begin(), nodes.end());
    std::stable_sort(order.begin(), order.end(), [&](unsigned a, unsigned b) {
      return std::make_pair(topology_.distance(start, a), a) <
             std::make_pair(topology_.distance(start, b), b);
    });
    std::size_t covered = 0;
    unsigned distanceSum = 0;
    std::vector<unsigned> used;
    for (unsigned node : order) {
      if (covered >= cpuCount) break;
      used.push_back(node);
      distanceSum += topology_.distance(start, node);
      for (const auto& free : usable)
        if (free.node == node) covered += cores[free.core].cpus.size();
    }
    auto cost = std::make_tuple(used.size(), distanceSum, start);
    if (covered >= cpuCount && (!bestCost || cost < *bestCost)) {
      bestCost = cost;
      bestOrder = used;
    }
  }
  std::vector<FreeCore> spanned;
  for (unsigned node : bestOrder) {
    std::vector<FreeCore> inNode;
    for (const auto& free : usable)
      if (free.node == node) inNode.push_back(free);
    auto ordered = byFullestL3(inNode);
    spanned.insert(spanned.end(), ordered.begin(), ordered.end());
  }
  return leavesShared(take(spanned));
}

Result<Placement> IslandAllocator::grow(const std::string& island, const CpuList& current,
                                        unsigned extraCpus) const {
  if (extraCpus == 0) return finish(current);
  const auto& cores = topology_.cores();
  // The island's own cores count as taken even when the caller did not
  // list them among the claims.
  std::vector<FreeCore> all = freeCores({});
  std::erase_if(all, [&](const FreeCore& free) {
    return !intersectionOf(cores[free.core].cpus, current).empty();
  });
  const CpuList homeNodes = nodesOfCpus(topology_, current);
  CpuList homeL3;
  for (const auto& core : cores)
    if (!intersectionOf(core.cpus, current).empty())
      homeL3 = unionOf(homeL3, {unsigned(l3Of(core))});
  auto nearness = [&](const FreeCore& free) {
    unsigned nearest = std::numeric_limits<unsigned>::max();
    for (unsigned node : homeNodes)
      nearest = std::min(nearest, topology_.distance(node, free.node));
    const bool sameL3 = free.l3 != kNoL3 && contains(homeL3, unsigned(free.l3));
    return std::make_tuple(nearest, sameL3 ? 0 : 1, cores[free.core].cpus.front());
  };
  std::stable_sort(all.begin(), all.end(),
                   [&](const FreeCore& a, const FreeCore& b) { return nearness(a) < nearness(b); });
  CpuList added;
  std::size_t usedCores = 0;
  for (const auto& free : all) {
    if (added.size() >= extraCpus) break;
    added.insert(added.end(), cores[free.core].cpus.begin(), cores[free.core].cpus.end());
    ++usedCores;
  }
  if (added.size() >= extraCpus && usedCores >= all.size())
    return cannotPlace(island, extraCpus,
                       "growing by " + std::to_string(extraCpus) +
                           " CPUs would take every free core and leave the shared island empty");
  if (added.size() < extraCpus)
    return cannotPlace(island, extraCpus,
                       "asked for " + std::to_string(extraCpus) + " more CPUs but only " +
                           std::to_string(added.size()) + " are free in whole cores");
  std::sort(added.begin(), added.end());
  return finish(unionOf(current, added));
}

Result<Placement> IslandAllocator::shrink(const std::string& island, const CpuList& current,
                                          unsigned fewerCpus) const {
  if (fewerCpus == 0) return finish(current);
  if (fewerCpus >= current.size())
    return cannotPlace(island, fewerCpus,
                       "shrinking by " + std::to_string(fewerCpus) + " would leave no CPU of " +
                           std::to_string(current.size()));
  const auto& cores = topology_.cores();
  CpuList remaining = current;
  std::size_t removed = 0;
  while (removed < fewerCpus) {
    // The island's cores, and how many of them share each L3 and node.
    std::vector<std::size_t> mine;
    std::map<std::size_t, std::size_t> perL3;
    std::map<unsigned, std::size_t> perNode;
    for (std::size_t i = 0; i < cores.size(); ++i) {
      if (cores[i].cpus.empty() || intersectionOf(cores[i].cpus, remaining).empty()) continue;
      mine.push_back(i);
      ++perL3[l3Of(cores[i])];
      ++perNode[topology_.nodeOfCpu(cores[i].cpus.front()).value_or(0)];
    }
    if (mine.size() <= 1) break;
    auto outskirt = [&](std::size_t i) {
      unsigned node = topology_.nodeOfCpu(cores[i].cpus.front()).value_or(0);
      // Fewest cores in its node, then in its L3, then the highest CPU.
      return std::make_tuple(perNode[node], perL3[l3Of(cores[i])],
                             std::numeric_limits<unsigned>::max() - cores[i].cpus.front());
    };
    std::size_t victim =
        *std::min_element(mine.begin(), mine.end(),
                          [&](std::size_t a, std::size_t b) { return outskirt(a) < outskirt(b); });
    CpuList dropped = intersectionOf(cores[victim].cpus, remaining);
    removed += dropped.size();
    remaining = differenceOf(remaining, dropped);
  }
  if (removed < fewerCpus)
    return cannotPlace(island, fewerCpus,
                       "shrinking by " + std::to_string(fewerCpus) +
                           " whole cores would leave the island without a core");
  return finish(remaining);
}

}  // namespace Atoll::numa
