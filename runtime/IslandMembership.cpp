#include "runtime/IslandMembership.h"

#include <algorithm>

namespace Atoll {

std::string_view aggregateKindName(AggregateKind kind) {
  switch (kind) {
    case AggregateKind::Host:
      return "host";
    case AggregateKind::Shared:
      return "shared";
    case AggregateKind::Island:
      return "island";
  }
  return "island";
}

namespace {

bool inCgroup(const std::string& path, const std::string& cgroup) {
  return path == cgroup ||
         (path.size() > cgroup.size() && path.compare(0, cgroup.size(), cgroup) == 0 &&
          path[cgroup.size()] == '/');
}

}  // namespace

std::vector<IslandAggregate> islandAggregates(const std::vector<IslandSettings>& islands,
                                              const std::vector<telemetry::Workload>& workloads,
                                              const std::string& managedRoot, unsigned hostCpus) {
  IslandAggregate host{
      std::string(kHostAggregateName), AggregateKind::Host, {}, static_cast<double>(hostCpus)};
  IslandAggregate shared{std::string(kSharedAggregateName), AggregateKind::Shared, {}, 0};
  std::vector<IslandAggregate> own;
  size_t claimed = 0;
  for (const auto& island : islands) {
    own.push_back(
        {island.name, AggregateKind::Island, {}, static_cast<double>(island.cpus.size())});
    claimed += island.cpus.size();
  }
  shared.capacityCores = hostCpus > claimed ? static_cast<double>(hostCpus - claimed) : 0.0;
  for (const auto& w : workloads) {
    host.members.push_back(w.number);
    bool placed = false;
    for (size_t i = 0; i < islands.size() && !placed; ++i) {
      if (inCgroup(w.cgroup.path, managedRoot + "/" + islands[i].name)) {
        own[i].members.push_back(w.number);
        placed = true;
      }
    }
    if (!placed) shared.members.push_back(w.number);
  }
  std::vector<IslandAggregate> out;
  out.push_back(std::move(host));
  out.push_back(std::move(shared));
  for (auto& island : own) out.push_back(std::move(island));
  for (auto& aggregate : out) std::sort(aggregate.members.begin(), aggregate.members.end());
  return out;
}

}  // namespace Atoll
