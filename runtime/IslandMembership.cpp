#include "runtime/IslandMembership.h"

#include <algorithm>
#include <charconv>

#include "numa/CpuSet.h"

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

namespace {

constexpr std::string_view kPidPrefix = "pid:";
constexpr std::string_view kVmPrefix = "vm:";

Error pinError(std::string_view workload, const nlohmann::json& value, std::string detail) {
  return Error::invalid("pin", std::string(kPinStatePrefix) + std::string(workload), value.dump(),
                        std::move(detail));
}

}  // namespace

std::string WorkloadName::key() const {
  return kind == WorkloadKind::Process ? std::string(kPidPrefix) + std::to_string(pid) : domain;
}

Result<WorkloadName> parseWorkloadName(std::string_view text) {
  WorkloadName out;
  if (text.substr(0, kPidPrefix.size()) == kPidPrefix) {
    std::string_view digits = text.substr(kPidPrefix.size());
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), out.pid);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || out.pid <= 0)
      return Error::invalid("workload", "", std::string(text),
                            "expected pid:N with N a process id above 0");
    out.kind = WorkloadKind::Process;
    return out;
  }
  if (text.substr(0, kVmPrefix.size()) == kVmPrefix) text.remove_prefix(kVmPrefix.size());
  if (text.empty())
    return Error::invalid("workload", "", std::string(text), "a workload needs a name");
  out.kind = WorkloadKind::Domain;
  out.domain = std::string(text);
  return out;
}

Result<WorkloadPin> parsePinStateValue(std::string_view workload, const nlohmann::json& value) {
  auto name = parseWorkloadName(workload);
  if (!name) return name.error();
  if (!value.is_object() || !value.contains("island") || !value["island"].is_string())
    return pinError(workload, value,
                    "expected {\"island\": \"NAME\", \"source\": \"operator\"|\"planner\"}");
  for (const auto& [field, item] : value.items())
    if (field != "island" && field != "source")
      return pinError(workload, value,
                      "unknown field '" + field + "'; only \"island\" and \"source\" are allowed");
  WorkloadPin pin{name->key(), value["island"].get<std::string>(), std::string(kPinSourceOperator)};
  if (pin.island != numa::kSharedIslandName) {
    if (auto valid = numa::validateIslandName(pin.island); !valid)
      return pinError(workload, value, "island '" + pin.island + "': " + valid.error().detail);
  }
  if (value.contains("source")) {
    const auto& source = value["source"];
    if (!source.is_string() || (source.get<std::string>() != kPinSourceOperator &&
                                source.get<std::string>() != kPinSourcePlanner))
      return pinError(workload, value,
                      "source " + value["source"].dump() + " is not \"operator\" or \"planner\"");
    pin.source = value["source"].get<std::string>();
  }
  return pin;
}

nlohmann::json pinStateValue(const WorkloadPin& pin) {
  return {{"island", pin.island}, {"source", pin.source}};
}

MembershipPlan planMembership(const std::vector<WorkloadPin>& pins,
                              const std::vector<SelectedWorkload>& selected,
                              const std::set<std::string>& islands,
                              const std::map<std::string, ObservedWorkload>& observed) {
  MembershipPlan plan;
  // workload -> (island, reason); pins first so they win over selectors.
  std::map<std::string, std::pair<std::string, std::string>> wanted;
  auto exists = [&](const std::string& island) {
    return island == kSharedAggregateName || islands.count(island) > 0;
  };
  for (const auto& pin : pins) {
    if (!exists(pin.island)) {
      plan.problems.push_back("pin of '" + pin.workload + "' names island '" + pin.island +
                              "', which is not desired");
      continue;
    }
    wanted[pin.workload] = {pin.island, "pin:" + pin.source};
  }
  for (const auto& s : selected) {
    if (!exists(s.island)) continue;
    auto [it, inserted] = wanted.try_emplace(s.workload, s.island, "selector:" + s.selector);
    if (!inserted && it->second.first != s.island && it->second.second.rfind("selector:", 0) == 0)
      plan.problems.push_back("'" + s.workload + "' is selected by islands '" + it->second.first +
                              "' and '" + s.island + "'; it stays on '" + it->second.first + "'");
  }
  for (const auto& [workload, target] : wanted) {
    auto seen = observed.find(workload);
    if (seen == observed.end() || !seen->second.running) {
      if (target.second.rfind("pin:", 0) == 0)
        plan.problems.push_back("pinned workload '" + workload + "' is not running");
      continue;
    }
    if (seen->second.island == target.first) continue;
    plan.moves.push_back({workload, seen->second.island, target.first, target.second});
  }
  return plan;
}

std::string islandOfCgroup(std::string_view procCgroupText, const std::string& managedRoot) {
  // The cgroup v2 line is "0::/PATH".
  std::string_view rest = procCgroupText;
  while (!rest.empty()) {
    size_t newline = rest.find('\n');
    std::string_view line = rest.substr(0, newline);
    rest = newline == std::string_view::npos ? std::string_view{} : rest.substr(newline + 1);
    if (line.substr(0, 3) != "0::") continue;
    std::string_view path = line.substr(3);
    if (!path.empty() && path.front() == '/') path.remove_prefix(1);
    if (path.size() <= managedRoot.size() + 1 ||
        path.substr(0, managedRoot.size()) != managedRoot || path[managedRoot.size()] != '/')
      return std::string(kSharedAggregateName);
    path.remove_prefix(managedRoot.size() + 1);
    return std::string(path.substr(0, path.find('/')));
  }
  return std::string(kSharedAggregateName);
}

std::string islandOfPinning(const numa::DomainPinning& pinning,
                            const std::vector<numa::Island>& islands) {
  for (const auto& island : islands) {
    if (pinning.emulator != island.cpus || pinning.memoryNodes != island.memNodes) continue;
    bool all = std::all_of(pinning.vcpus.begin(), pinning.vcpus.end(),
                           [&](const numa::CpuList& cpus) { return cpus == island.cpus; }) &&
               std::all_of(pinning.iothreads.begin(), pinning.iothreads.end(),
                           [&](const numa::IothreadPin& io) { return io.cpus == island.cpus; });
    if (all) return island.name;
  }
  return {};
}

}  // namespace Atoll
