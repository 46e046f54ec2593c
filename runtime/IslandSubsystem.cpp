#include "runtime/IslandSubsystem.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "numa/CpuSet.h"
#include "util/Fs.h"

namespace Atoll {

namespace {

constexpr std::string_view kApplyAction = "apply";

numa::CpuList toCpuList(const CpuSet& set) {
  return numa::CpuList(set.indices().begin(), set.indices().end());
}

nlohmann::json islandParams(const numa::Island& island) {
  return {{"name", island.name},
          {"cpus", numa::formatCpuList(island.cpus)},
          {"mems", numa::formatCpuList(island.memNodes)},
          {"exclusivity", numa::exclusivityName(island.exclusivity)}};
}

nlohmann::json statusJson(const numa::IslandStatus& status) {
  nlohmann::json out = islandParams(status.island);
  out["effective_cpus"] = numa::formatCpuList(status.effectiveCpus);
  out["effective_mems"] = numa::formatCpuList(status.effectiveMems);
  out["members"] = status.members;
  if (!status.partitionProblem.empty()) out["partition_problem"] = status.partitionProblem;
  return out;
}

}  // namespace

std::vector<DesiredIsland> desiredIslands(const std::vector<IslandSettings>& configured,
                                          const std::vector<StateEntry>& stateEntries,
                                          std::vector<std::string>& problems) {
  std::vector<DesiredIsland> out;
  for (const auto& island : configured) out.push_back({island, "config"});
  for (const auto& entry : stateEntries) {
    const std::string name = entry.key.substr(kIslandStatePrefix.size());
    auto complain = [&](const std::string& why) {
      problems.push_back("desired state '" + entry.key + "' = " + entry.value.dump() + ": " + why);
    };
    if (auto valid = numa::validateIslandName(name); !valid) {
      complain(valid.error().detail);
      continue;
    }
    if (!entry.value.is_object() || !entry.value.contains("cpus") ||
        !entry.value["cpus"].is_string()) {
      complain("expected {\"cpus\": \"LIST\", \"mems\": \"LIST\"}");
      continue;
    }
    auto cpus = CpuSet::parse(entry.value["cpus"].get<std::string>());
    if (!cpus || cpus->empty()) {
      complain(cpus ? "an island needs at least one CPU" : cpus.error().detail);
      continue;
    }
    CpuSet mems;
    if (entry.value.contains("mems")) {
      if (!entry.value["mems"].is_string()) {
        complain("\"mems\" must be a node list string");
        continue;
      }
      auto parsed = CpuSet::parse(entry.value["mems"].get<std::string>());
      if (!parsed) {
        complain(parsed.error().detail);
        continue;
      }
      mems = *parsed;
    }
    IslandSettings settings{name, *cpus, mems, 0};
    auto same = std::find_if(out.begin(), out.end(),
                             [&](const DesiredIsland& d) { return d.settings.name == name; });
    if (same != out.end())
      *same = {settings, "state"};
    else
      out.push_back({settings, "state"});
  }
  return out;
}

std::string islandSupportProblem(const std::string& cgroupMount) {
  auto mount = Dir::open(cgroupMount);
  if (!mount) return "the cgroup2 mount cannot be opened: " + mount.error().message();
  auto controllers = mount->readFile("cgroup.controllers");
  if (!controllers)
    return cgroupMount + " is not a cgroup v2 mount: " + controllers.error().message();
  std::string text(trim(*controllers));
  std::vector<std::string> words = numa::parseWordList(text);
  if (std::find(words.begin(), words.end(), "cpuset") == words.end())
    return "the cgroup2 mount " + cgroupMount +
           " offers no cpuset controller (cgroup.controllers: '" + text +
           "'); islands are reported, not enforced";
  return {};
}

IslandSubsystem::IslandSubsystem(StateStore& store, ActionLog& actions, IslandSource configured,
                                 std::string cgroupMount, std::string managedRoot)
    : store_(store),
      actions_(actions),
      configured_(std::move(configured)),
      cgroupMount_(std::move(cgroupMount)),
      managedRoot_(std::move(managedRoot)) {}

void IslandSubsystem::setDegraded(std::string reason) {
  std::lock_guard lock(viewMutex_);
  if (reason != degraded_ && !reason.empty())
    spdlog::warn("event=islands_degraded reason=\"{}\"", reason);
  if (reason.empty() && !degraded_.empty()) spdlog::info("event=islands_enforced");
  degraded_ = std::move(reason);
}

Result<void> IslandSubsystem::ensureEnforcer() {
  if (enforcer_) return ok();
  if (std::string problem = islandSupportProblem(cgroupMount_); !problem.empty())
    return Error::invalid("islands", cgroupMount_, "", problem);
  if (!topology_) {
    auto topology = numa::Topology::fromHost();
    if (!topology) return topology.error();
    topology_ = std::move(*topology);
  }
  auto enforcer = numa::IslandEnforcer::open(*topology_, cgroupMount_, managedRoot_);
  if (!enforcer) return enforcer.error();
  enforcer_.emplace(std::move(*enforcer));
  return ok();
}

std::vector<numa::Island> IslandSubsystem::toIslands(
    const std::vector<DesiredIsland>& desired) const {
  std::vector<numa::Island> out;
  for (const auto& d : desired) {
    numa::Island island;
    island.name = d.settings.name;
    island.cpus = toCpuList(d.settings.cpus);
    island.memNodes = d.settings.mems.empty() && topology_
                          ? numa::nodesOfCpus(*topology_, island.cpus)
                          : toCpuList(d.settings.mems);
    out.push_back(std::move(island));
  }
  return out;
}

Result<void> IslandSubsystem::reconcile(const std::vector<DesiredIsland>& desired) {
  auto current = enforcer_->status();
  if (!current) return current.error();
  // Start from what cgroupfs holds (islands nobody asked for stay, and the
  // exclusivity and limits set by hand are kept), then impose the desired
  // CPUs and memory nodes.
  std::vector<numa::Island> target;
  for (const auto& status : *current) target.push_back(status.island);
  const std::vector<numa::Island> wanted = toIslands(desired);
  for (const numa::Island& w : wanted) {
    auto it = std::find_if(target.begin(), target.end(),
                           [&](const numa::Island& t) { return t.name == w.name; });
    if (it == target.end()) {
      target.push_back(w);
    } else {
      it->cpus = w.cpus;
      it->memNodes = w.memNodes;
    }
  }
  std::vector<numa::Island> now;
  for (const auto& status : *current) now.push_back(status.island);
  if (target != now) {
    nlohmann::json params = {{"islands", nlohmann::json::array()}};
    for (const auto& island : target) params["islands"].push_back(islandParams(island));
    auto id = actions_.begin(std::string(name()), std::string(kApplyAction), params);
    if (!id) return id.error();
    spdlog::info("event=islands_apply action={} islands={}", *id, params["islands"].dump());
    auto applied = enforcer_->apply(target);
    if (auto finished =
            actions_.finish(*id, applied ? ActionOutcome::Completed : ActionOutcome::RolledBack,
                            applied ? std::string() : applied.error().message());
        !finished)
      return finished.error();
    if (!applied) return applied.error();
    std::lock_guard lock(viewMutex_);
    ++changesApplied_;
  }
  auto after = enforcer_->status();
  if (!after) return after.error();
  std::vector<numa::Island> plain;
  for (const auto& status : *after) plain.push_back(status.island);
  std::lock_guard lock(viewMutex_);
  current_ = std::move(*after);
  sharedCpus_ = numa::formatCpuList(numa::sharedCpus(*topology_, plain));
  return ok();
}

Result<void> IslandSubsystem::runPhase(Phase, const TickContext&) {
  std::vector<std::string> problems;
  auto entries = store_.list(Keyspace::Desired, kIslandStatePrefix);
  if (!entries) return entries.error();
  std::vector<DesiredIsland> desired = desiredIslands(configured_(), *entries, problems);
  if (!topology_) {
    // The map of islands is worth showing even where they cannot be enforced.
    if (auto topology = numa::Topology::fromHost()) {
      topology_ = std::move(*topology);
    } else {
      problems.push_back("topology: " + topology.error().message());
    }
  }
  {
    std::lock_guard lock(viewMutex_);
    desired_ = desired;
    problems_ = problems;
    if (topology_) {
      topologySummary_ = topology_->summary();
      if (!enforced_) {
        std::vector<numa::Island> plain = toIslands(desired);
        sharedCpus_ = numa::formatCpuList(numa::sharedCpus(*topology_, plain));
      }
    }
  }
  if (auto ready = ensureEnforcer(); !ready) {
    // Nothing to enforce is not a degradation worth a warning.
    setDegraded(desired.empty()                ? std::string()
                : ready.error().detail.empty() ? ready.error().message()
                                               : ready.error().detail);
    return ok();
  }
  setDegraded({});
  {
    std::lock_guard lock(viewMutex_);
    enforced_ = true;
  }
  return reconcile(desired);
}

Result<ActionOutcome> IslandSubsystem::recover(const PendingAction& action) {
  if (action.kind != kApplyAction)
    return Error::invalid("recover action", std::string(name()), action.kind,
                          "not an action of the islands subsystem");
  if (auto ready = ensureEnforcer(); !ready) {
    // The apply could not have written anything on a host without islands.
    return ActionOutcome::RolledBack;
  }
  std::vector<numa::Island> target;
  try {
    for (const auto& item : action.params.at("islands")) {
      numa::Island island;
      island.name = item.at("name").get<std::string>();
      auto cpus = numa::parseCpuList(item.at("cpus").get<std::string>(), "journaled cpus");
      auto mems = numa::parseCpuList(item.at("mems").get<std::string>(), "journaled mems");
      if (!cpus) return cpus.error();
      if (!mems) return mems.error();
      island.cpus = *cpus;
      island.memNodes = *mems;
      island.exclusivity = numa::parseExclusivity(item.value("exclusivity", "member"))
                               .value_or(numa::Exclusivity::Shared);
      target.push_back(std::move(island));
    }
  } catch (const nlohmann::json::exception& e) {
    return Error::invalid("recover action", std::string(name()), action.params.dump(), e.what());
  }
  // Keep the limits cgroupfs shows; finish what the interrupted apply began.
  if (auto current = enforcer_->islands()) {
    for (auto& island : target)
      for (const auto& c : *current)
        if (c.name == island.name) island.limits = c.limits;
  }
  if (auto applied = enforcer_->apply(target); !applied) return applied.error();
  return ActionOutcome::Completed;
}

nlohmann::json IslandSubsystem::describe() const {
  std::lock_guard lock(viewMutex_);
  nlohmann::json out = {{"enforced", enforced_},
                        {"desired", desired_.size()},
                        {"current", current_.size()},
                        {"changes_applied", changesApplied_},
                        {"problems", problems_}};
  if (!degraded_.empty()) out["degraded"] = nlohmann::json::array({degraded_});
  return out;
}

nlohmann::json IslandSubsystem::islandsJson() const {
  std::lock_guard lock(viewMutex_);
  nlohmann::json desired = nlohmann::json::array();
  for (const auto& d : desired_)
    desired.push_back({{"name", d.settings.name},
                       {"cpus", d.settings.cpus.toString()},
                       {"mems", d.settings.mems.toString()},
                       {"source", d.source}});
  nlohmann::json current = nlohmann::json::array();
  for (const auto& status : current_) current.push_back(statusJson(status));
  nlohmann::json out = {
      {"cgroup_mount", cgroupMount_},
      {"managed_root", managedRoot_},
      {"enforced", enforced_},
      {"degraded", degraded_.empty() ? nlohmann::json(nullptr) : nlohmann::json(degraded_)},
      {"desired", std::move(desired)},
      {"current", std::move(current)},
      {"problems", problems_}};
  out["topology"] =
      topologySummary_.empty() ? nlohmann::json(nullptr) : nlohmann::json(topologySummary_);
  out["shared_cpus"] = sharedCpus_.empty() ? nlohmann::json(nullptr) : nlohmann::json(sharedCpus_);
  return out;
}

}  // namespace Atoll
