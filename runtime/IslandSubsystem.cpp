#include "runtime/IslandSubsystem.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <set>

#include "numa/BoundedVmPinner.h"
#include "numa/CpuSet.h"
#include "numa/DomainPinning.h"
#include "numa/IslandAllocator.h"
#include "numa/IslandSelector.h"
#include "numa/LibvirtPinner.h"
#include "runtime/ApiRequests.h"
#include "runtime/IslandMembership.h"
#include "util/Fs.h"

namespace Atoll {

namespace {

constexpr std::string_view kApplyAction = "apply";
constexpr std::string_view kRemoveAction = "remove";
constexpr std::string_view kMembersAction = "members";

// The limit names as cgroupfs spells them, which desired state uses too.
constexpr std::string_view kLimitNames[] = {"cpu.weight",  "cpu.max",    "memory.min", "memory.low",
                                            "memory.high", "memory.max", "io.weight"};

numa::CpuList toCpuList(const CpuSet& set) {
  return numa::CpuList(set.indices().begin(), set.indices().end());
}

nlohmann::json islandParams(const numa::Island& island) {
  return {{"name", island.name},
          {"cpus", numa::formatCpuList(island.cpus)},
          {"mems", numa::formatCpuList(island.memNodes)},
          {"exclusivity", numa::exclusivityName(island.exclusivity)},
          {"limits", numa::limitsJson(island.limits)}};
}

Error stateError(const std::string& name, const nlohmann::json& value, std::string detail) {
  return Error::invalid("desired state", std::string(kIslandStatePrefix) + name, value.dump(),
                        std::move(detail));
}

IslandChangeReply refuse(int status, std::string reason) {
  return {status, {{"error", std::move(reason)}}};
}

CpuSet toCpuSet(const numa::CpuList& list) {
  std::vector<long long> indices(list.begin(), list.end());
  return CpuSet::fromIndices(indices).value_or(CpuSet{});
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

Result<numa::IslandLimits> parseLimitsJson(const std::string& island, const nlohmann::json& value) {
  if (!value.is_object())
    return stateError(island, value, "\"limits\" must be an object of cgroup limit files");
  numa::IslandLimits limits;
  for (const auto& [name, item] : value.items()) {
    if (std::find(std::begin(kLimitNames), std::end(kLimitNames), name) == std::end(kLimitNames))
      return stateError(island, value,
                        "unknown limit '" + name +
                            "'; known: cpu.weight, cpu.max, memory.min, memory.low, memory.high, "
                            "memory.max, io.weight");
    if (name == "cpu.max") {
      if (!item.is_string())
        return stateError(island, value, "cpu.max must be a string: 'max' or 'QUOTA PERIOD'");
      limits.cpuMax = item.get<std::string>();
      continue;
    }
    if (!item.is_number_integer() || item.get<std::int64_t>() < 0)
      return stateError(island, value,
                        name + " must be a non-negative integer, not " + item.dump());
    const auto number = item.get<std::uint64_t>();
    if (name == "cpu.weight" || name == "io.weight") {
      if (number > 10000)
        return stateError(island, value, name + " " + item.dump() + " is outside 1..10000");
      (name == "cpu.weight" ? limits.cpuWeight : limits.ioWeight) = static_cast<unsigned>(number);
    } else if (name == "memory.min") {
      limits.memoryMin = number;
    } else if (name == "memory.low") {
      limits.memoryLow = number;
    } else if (name == "memory.high") {
      limits.memoryHigh = number;
    } else {
      limits.memoryMax = number;
    }
  }
  if (auto valid = numa::validateLimits(island, limits); !valid) return valid.error();
  return limits;
}

Result<std::optional<DesiredIsland>> parseIslandStateValue(const std::string& name,
                                                           const nlohmann::json& value) {
  if (auto valid = numa::validateIslandName(name); !valid) return valid.error();
  if (value.is_object() && value.size() == 1 && value.contains("absent") && value["absent"] == true)
    return std::optional<DesiredIsland>();
  if (!value.is_object() || !value.contains("cpus") || !value["cpus"].is_string())
    return stateError(name, value, "expected {\"cpus\": \"LIST\", \"mems\": \"LIST\", ...}");
  DesiredIsland out;
  out.source = "state";
  out.settings.name = name;
  for (const auto& [field, item] : value.items()) {
    if (field == "cpus") {
      auto cpus = CpuSet::parse(item.get<std::string>());
      if (!cpus) return stateError(name, value, cpus.error().detail);
      out.settings.cpus = *cpus;
    } else if (field == "mems") {
      if (!item.is_string()) return stateError(name, value, "\"mems\" must be a node list string");
      if (!trim(item.get<std::string>()).empty()) {
        auto mems = CpuSet::parse(item.get<std::string>());
        if (!mems) return stateError(name, value, mems.error().detail);
        out.settings.mems = *mems;
      }
    } else if (field == "exclusivity") {
      auto exclusivity =
          item.is_string() ? numa::parseExclusivity(item.get<std::string>()) : std::nullopt;
      if (!exclusivity)
        return stateError(name, value,
                          "exclusivity " + item.dump() + " is not member, root or isolated");
      out.exclusivity = *exclusivity;
    } else if (field == "limits") {
      auto limits = parseLimitsJson(name, item);
      if (!limits) return limits.error();
      out.limits = *limits;
    } else if (field == "selectors") {
      if (!item.is_array()) return stateError(name, value, "\"selectors\" must be a list");
      for (const auto& selector : item) {
        if (!selector.is_string())
          return stateError(name, value, "selector " + selector.dump() + " is not a string");
        auto parsed = numa::parseIslandSelector(selector.get<std::string>());
        if (!parsed) return parsed.error();
        out.selectors.push_back(selector.get<std::string>());
      }
    } else {
      return stateError(name, value, "unknown field '" + field + "'");
    }
  }
  return std::optional<DesiredIsland>(std::move(out));
}

nlohmann::json islandStateValue(const DesiredIsland& island) {
  nlohmann::json out = {{"cpus", island.settings.cpus.toString()}};
  if (!island.settings.mems.empty()) out["mems"] = island.settings.mems.toString();
  if (island.exclusivity) out["exclusivity"] = numa::exclusivityName(*island.exclusivity);
  if (island.limits) out["limits"] = numa::limitsJson(*island.limits);
  if (!island.selectors.empty()) out["selectors"] = island.selectors;
  return out;
}

std::vector<DesiredIsland> desiredIslands(const std::vector<IslandSettings>& configured,
                                          const std::vector<StateEntry>& stateEntries,
                                          std::vector<std::string>& problems,
                                          std::vector<std::string>* absent) {
  std::vector<DesiredIsland> out;
  for (const auto& island : configured) out.push_back({island, "config", {}, {}, {}});
  for (const auto& entry : stateEntries) {
    const std::string name = entry.key.substr(kIslandStatePrefix.size());
    auto parsed = parseIslandStateValue(name, entry.value);
    if (!parsed) {
      problems.push_back("desired state '" + entry.key + "' = " + entry.value.dump() + ": " +
                         parsed.error().detail);
      continue;
    }
    auto same = std::find_if(out.begin(), out.end(),
                             [&](const DesiredIsland& d) { return d.settings.name == name; });
    if (!*parsed) {
      if (same != out.end()) out.erase(same);
      if (absent != nullptr) absent->push_back(name);
      continue;
    }
    (*parsed)->revision = entry.revision;
    if (same != out.end())
      *same = std::move(**parsed);
    else
      out.push_back(std::move(**parsed));
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
      managedRoot_(std::move(managedRoot)) {
  // Loaded once, before any API thread reads it.
  if (auto topology = numa::Topology::fromHost())
    topology_ = std::move(*topology);
  else
    topologyProblem_ = "topology: " + topology.error().message();
  loadMemoryMoves();
  pinners_ = libvirtPinners(std::string(numa::kDefaultLibvirtUri));
}

IslandSubsystem::PinnerFactory IslandSubsystem::libvirtPinners(std::string uri) {
  return [uri = std::move(uri)]() -> Result<std::unique_ptr<numa::VmPinner>> {
    if (uri.empty())
      return Error::invalid("connect to libvirt", "", "",
                            "libvirt is not used on this host ([telemetry] libvirt_uri is empty)");
    auto connected = numa::LibvirtPinner::connect(uri);
    if (!connected) return connected.error();
    return std::unique_ptr<numa::VmPinner>(std::move(*connected));
  };
}

void IslandSubsystem::loadMemoryMoves() {
  auto facts = store_.list(Keyspace::Facts, kIslandMemoryMovePrefix);
  if (!facts) {
    spdlog::warn("event=islands_memory_moves_unread error=\"{}\"", facts.error().message());
    return;
  }
  for (const StateEntry& entry : *facts) {
    auto move = numa::parseMemoryMoveJson(entry.value, "facts/" + entry.key);
    if (!move) {
      spdlog::warn("event=islands_memory_move_unread key={} error=\"{}\"", entry.key,
                   move.error().message());
      continue;
    }
    memoryMoves_[entry.key.substr(kIslandMemoryMovePrefix.size())] = std::move(*move);
  }
}

void IslandSubsystem::forgetMemoryMove(const std::string& island) {
  {
    std::lock_guard lock(viewMutex_);
    if (memoryMoves_.erase(island) == 0) return;
  }
  // An island made later under the same name has moved nothing yet.
  if (auto removed = store_.remove(Keyspace::Facts, std::string(kIslandMemoryMovePrefix) + island,
                                   ChangeOrigin{0, 0, "islands"});
      !removed)
    spdlog::warn("event=islands_memory_move_unforgotten island={} error=\"{}\"", island,
                 removed.error().message());
}

void IslandSubsystem::useTopology(numa::Topology topology) {
  topology_ = std::move(topology);
  topologyProblem_.clear();
  enforcer_.reset();
}

Result<numa::VmPinner*> IslandSubsystem::pinner() const {
  // The caller holds pinnerMutex_. The connection is made on the bounded
  // pinner's thread at its first call, and made again after it failed.
  if (!pinner_)
    pinner_ = std::make_unique<numa::BoundedVmPinner>(pinners_, pinnerDeadline_, "libvirt");
  if (auto connected = pinner_->connect(); !connected) return connected.error();
  return pinner_.get();
}

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
  if (!topology_) return Error::invalid("islands", cgroupMount_, "", topologyProblem_);
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
    if (d.exclusivity) island.exclusivity = *d.exclusivity;
    if (d.limits) island.limits = *d.limits;
    out.push_back(std::move(island));
  }
  return out;
}

numa::Island IslandSubsystem::sharedIsland(const std::vector<numa::Island>& islands) const {
  numa::Island shared;
  shared.name = std::string(numa::kSharedIslandName);
  if (!topology_) return shared;
  shared.cpus = numa::sharedCpus(*topology_, islands);
  for (const auto& node : topology_->nodes()) shared.memNodes.push_back(node.osIndex);
  return shared;
}

ActionOutcome applyOutcome(bool applied, const std::vector<Error>& notRolledBack) {
  if (applied) return ActionOutcome::Completed;
  return notRolledBack.empty() ? ActionOutcome::RolledBack : ActionOutcome::RollbackIncomplete;
}

Result<void> IslandSubsystem::reconcile(const std::vector<DesiredIsland>& desired,
                                        const std::vector<std::string>& absent) {
  auto current = enforcer_->status();
  if (!current) return current.error();
  // Islands asked to be absent go first, each as one journaled action
  // (their members move to the shared island).
  for (const auto& name : absent) {
    const bool present =
        std::any_of(current->begin(), current->end(),
                    [&](const numa::IslandStatus& s) { return s.island.name == name; });
    if (!present) continue;
    auto id =
        actions_.begin(std::string(this->name()), std::string(kRemoveAction), {{"name", name}});
    if (!id) return id.error();
    spdlog::info("event=islands_remove action={} island={}", *id, name);
    auto removed = enforcer_->remove(name);
    if (auto finished =
            actions_.finish(*id, removed ? ActionOutcome::Completed : ActionOutcome::RolledBack,
                            removed ? std::string() : removed.error().message());
        !finished)
      return finished.error();
    if (!removed) return removed.error();
    forgetMemoryMove(name);
    std::lock_guard lock(viewMutex_);
    ++changesApplied_;
  }
  if (!absent.empty()) {
    current = enforcer_->status();
    if (!current) return current.error();
  }
  // Start from what cgroupfs holds (islands nobody asked for stay, and the
  // exclusivity and limits nobody stated are kept), then impose the desired
  // CPUs, memory nodes and whatever else the desired state states.
  std::vector<numa::Island> target;
  for (const auto& status : *current) target.push_back(status.island);
  const std::vector<numa::Island> wanted = toIslands(desired);
  for (size_t i = 0; i < wanted.size(); ++i) {
    const numa::Island& w = wanted[i];
    auto it = std::find_if(target.begin(), target.end(),
                           [&](const numa::Island& t) { return t.name == w.name; });
    if (it == target.end()) {
      target.push_back(w);
    } else {
      it->cpus = w.cpus;
      it->memNodes = w.memNodes;
      if (desired[i].exclusivity) it->exclusivity = w.exclusivity;
      if (desired[i].limits) it->limits = w.limits;
    }
  }
  std::vector<numa::Island> now;
  for (const auto& status : *current) now.push_back(status.island);
  std::optional<Error> moveFailed;
  if (target != now) {
    nlohmann::json params = {{"islands", nlohmann::json::array()}};
    for (const auto& island : target) params["islands"].push_back(islandParams(island));
    auto id = actions_.begin(std::string(name()), std::string(kApplyAction), params);
    if (!id) return id.error();
    spdlog::info("event=islands_apply action={} islands={}", *id, params["islands"].dump());
    // Islands whose memory nodes change keep the old ones through apply,
    // so that their page moves are measured and timed one by one after it.
    const std::vector<numa::MemoryNodeChange> nodeChanges = numa::memoryNodeChanges(now, target);
    std::vector<numa::Island> staged = target;
    for (auto& island : staged)
      for (const auto& change : nodeChanges)
        if (change.island == island.name) island.memNodes = change.fromNodes;
    auto applied = enforcer_->apply(staged);
    // The host then holds neither the islands before nor the ones desired:
    // each file the rollback could not put back is for an operator to see.
    for (const Error& left : enforcer_->notRolledBack())
      spdlog::error("event=islands_rollback_incomplete error=\"{}\"", left.message());
    std::string failures;
    if (applied) {
      for (const auto& change : nodeChanges) {
        uint64_t revision = 0;
        for (const auto& d : desired)
          if (d.settings.name == change.island) revision = d.revision;
        if (auto moved = moveIslandMemory(change, revision); !moved) {
          failures += (failures.empty() ? "" : "; ") + moved.error().message();
          if (!moveFailed) moveFailed = moved.error();
        }
      }
    }
    if (auto finished =
            actions_.finish(*id, applyOutcome(applied.has_value(), enforcer_->notRolledBack()),
                            applied ? failures : applied.error().message());
        !finished)
      return finished.error();
    if (!applied) return applied.error();
    std::lock_guard lock(viewMutex_);
    ++changesApplied_;
  }
  auto members = reconcileMembers(desired);
  auto after = enforcer_->status();
  if (!after) return after.error();
  std::vector<numa::Island> plain;
  for (const auto& status : *after) plain.push_back(status.island);
  {
    std::lock_guard lock(viewMutex_);
    current_ = std::move(*after);
    sharedCpus_ = numa::formatCpuList(numa::sharedCpus(*topology_, plain));
  }
  if (!members) return members;
  if (moveFailed) return *moveFailed;
  return ok();
}

Result<void> IslandSubsystem::moveIslandMemory(const numa::MemoryNodeChange& change,
                                               uint64_t revision) {
  auto moved = enforcer_->moveMemory(change.island, change.toNodes);
  const std::int64_t finished = std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count();
  numa::MemoryMove record =
      numa::memoryMoveOf(moved ? *moved : numa::PageMoveReport{}, change.fromNodes, change.toNodes,
                         revision, finished);
  if (moved) {
    spdlog::info(
        "event=islands_memory_moved island={} from={} to={} bytes={} ms={:.3f} revision={}",
        change.island, numa::formatCpuList(change.fromNodes), numa::formatCpuList(change.toNodes),
        record.bytesMoved, record.milliseconds, revision);
  } else {
    record.error = moved.error().message();
    spdlog::warn("event=islands_memory_move_failed island={} to={} revision={} error=\"{}\"",
                 change.island, numa::formatCpuList(change.toNodes), revision, record.error);
  }
  // Kept as a fact so that `island show` still reports it after a restart;
  // a store that cannot take it loses only the report, not the move.
  if (auto stored =
          store_.put(Keyspace::Facts, std::string(kIslandMemoryMovePrefix) + change.island,
                     numa::memoryMoveJson(record), ChangeOrigin{0, 0, "islands"});
      !stored)
    spdlog::warn("event=islands_memory_move_unstored island={} error=\"{}\"", change.island,
                 stored.error().message());
  {
    std::lock_guard lock(viewMutex_);
    memoryMoves_[change.island] = std::move(record);
  }
  if (!moved) return moved.error();
  return ok();
}

Result<void> IslandSubsystem::moveWorkload(const std::string& workload, const std::string& island,
                                           const std::vector<numa::Island>& islands) {
  auto name = parseWorkloadName(workload);
  if (!name) return name.error();
  if (name->kind == WorkloadKind::Process) {
    const std::string path = island == numa::kSharedIslandName
                                 ? enforcer_->mountPath()
                                 : enforcer_->managedPath() + "/" + island;
    auto group = numa::CgroupV2::open(path);
    if (!group) return group.error();
    return group->moveProcess(name->pid);
  }
  numa::Island target = sharedIsland(islands);
  for (const auto& i : islands)
    if (i.name == island) target = i;
  std::lock_guard lock(pinnerMutex_);
  auto vms = pinner();
  if (!vms) return vms.error();
  auto pinned = numa::pinDomain(**vms, name->domain, target.cpus, target.memNodes);
  if (!pinned) return pinned.error();
  return ok();
}

Result<void> IslandSubsystem::reconcileMembers(const std::vector<DesiredIsland>& desired) {
  std::vector<std::string> problems;
  auto pinEntries = store_.list(Keyspace::Desired, kPinStatePrefix);
  if (!pinEntries) return pinEntries.error();
  std::vector<WorkloadPin> pins;
  for (const auto& entry : *pinEntries) {
    auto pin = parsePinStateValue(entry.key.substr(kPinStatePrefix.size()), entry.value);
    if (pin)
      pins.push_back(std::move(*pin));
    else
      problems.push_back(pin.error().message());
  }
  auto islands = enforcer_->islands();
  if (!islands) return islands.error();
  std::vector<numa::Island> withShared = *islands;
  withShared.push_back(sharedIsland(*islands));
  std::set<std::string> names;
  for (const auto& island : *islands) names.insert(island.name);

  // What the islands' selectors match now (read-only).
  std::vector<SelectedWorkload> selected;
  for (const auto& d : desired) {
    if (names.count(d.settings.name) == 0) continue;
    for (const auto& text : d.selectors) {
      auto selector = numa::parseIslandSelector(text);
      if (!selector) continue;
      if (!selector->needsLibvirt()) {
        auto groups = numa::matchCgroups(cgroupMount_, selector->pattern, managedRoot_);
        if (!groups) {
          problems.push_back(groups.error().message());
          continue;
        }
        for (const auto& group : *groups) {
          auto cgroup = numa::CgroupV2::open(cgroupMount_ + "/" + group);
          auto pids = cgroup ? cgroup->processes() : Result<std::vector<pid_t>>(cgroup.error());
          if (!pids) continue;  // gone since it matched
          for (pid_t pid : *pids)
            selected.push_back({"pid:" + std::to_string(pid), d.settings.name, text});
        }
        continue;
      }
      std::lock_guard lock(pinnerMutex_);
      auto vms = pinner();
      if (!vms) {
        problems.push_back("selector '" + text + "': " + vms.error().message());
        continue;
      }
      auto domains = numa::matchDomains(**vms, *selector);
      if (!domains) {
        problems.push_back(domains.error().message());
        continue;
      }
      for (const auto& domain : *domains) selected.push_back({domain, d.settings.name, text});
    }
  }

  // Where each of them is now.
  std::map<std::string, ObservedWorkload> observed;
  auto observe = [&](const std::string& workload) {
    if (observed.count(workload) != 0) return;
    auto name = parseWorkloadName(workload);
    if (!name) return;
    ObservedWorkload seen;
    if (name->kind == WorkloadKind::Process) {
      if (auto cgroup = readFile("/proc/" + std::to_string(name->pid) + "/cgroup")) {
        seen.running = true;
        seen.island = islandOfCgroup(*cgroup, managedRoot_);
      }
    } else {
      std::lock_guard lock(pinnerMutex_);
      auto vms = pinner();
      if (!vms) {
        problems.push_back("VM '" + name->domain + "': " + vms.error().message());
      } else if (auto pinning = (*vms)->pinning(name->domain)) {
        seen.running = true;
        seen.island = islandOfPinning(*pinning, withShared);
      }
    }
    observed[workload] = seen;
  };
  for (const auto& pin : pins) observe(pin.workload);
  for (const auto& s : selected) observe(s.workload);

  MembershipPlan plan = planMembership(pins, selected, names, observed);
  problems.insert(problems.end(), plan.problems.begin(), plan.problems.end());
  if (!plan.moves.empty()) {
    nlohmann::json params = {{"moves", nlohmann::json::array()}};
    for (const auto& move : plan.moves)
      params["moves"].push_back({{"workload", move.workload},
                                 {"from", move.from},
                                 {"to", move.to},
                                 {"reason", move.reason}});
    auto id = actions_.begin(std::string(name()), std::string(kMembersAction), params);
    if (!id) return id.error();
    spdlog::info("event=islands_members action={} moves={}", *id, params["moves"].dump());
    std::string failures;
    for (const auto& move : plan.moves) {
      if (auto moved = moveWorkload(move.workload, move.to, *islands); !moved) {
        problems.push_back("moving '" + move.workload + "' to '" + move.to +
                           "': " + moved.error().message());
        failures += (failures.empty() ? "" : "; ") + moved.error().message();
      }
    }
    if (auto finished = actions_.finish(*id, ActionOutcome::Completed, failures); !finished)
      return finished.error();
    std::lock_guard lock(viewMutex_);
    ++changesApplied_;
  }
  std::lock_guard lock(viewMutex_);
  pins_ = std::move(pins);
  memberProblems_ = std::move(problems);
  return ok();
}

Result<void> IslandSubsystem::runPhase(Phase, const TickContext&) {
  std::vector<std::string> problems;
  std::vector<std::string> absent;
  auto entries = store_.list(Keyspace::Desired, kIslandStatePrefix);
  if (!entries) return entries.error();
  std::vector<DesiredIsland> desired = desiredIslands(configured_(), *entries, problems, &absent);
  if (!topology_) problems.push_back(topologyProblem_);
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
  return reconcile(desired, absent);
}

Result<ActionOutcome> IslandSubsystem::recover(const PendingAction& action) {
  if (action.kind != kApplyAction && action.kind != kRemoveAction && action.kind != kMembersAction)
    return Error::invalid("recover action", std::string(name()), action.kind,
                          "not an action of the islands subsystem");
  if (auto ready = ensureEnforcer(); !ready) {
    // The action could not have written anything on a host without islands.
    return ActionOutcome::RolledBack;
  }
  try {
    if (action.kind == kRemoveAction) {
      // Finish the removal: the island's members go to the shared island.
      const std::string island = action.params.at("name").get<std::string>();
      auto current = enforcer_->islands();
      if (!current) return current.error();
      for (const auto& c : *current)
        if (c.name == island) {
          if (auto removed = enforcer_->remove(island); !removed) return removed.error();
        }
      return ActionOutcome::Completed;
    }
    if (action.kind == kMembersAction) {
      // Finish the moves: each is idempotent, and a workload gone since is
      // simply not there to move.
      auto islands = enforcer_->islands();
      if (!islands) return islands.error();
      for (const auto& move : action.params.at("moves")) {
        const std::string workload = move.at("workload").get<std::string>();
        if (auto moved = moveWorkload(workload, move.at("to").get<std::string>(), *islands); !moved)
          spdlog::warn("event=islands_recover_move_failed workload={} error=\"{}\"", workload,
                       moved.error().message());
      }
      return ActionOutcome::Completed;
    }
  } catch (const nlohmann::json::exception& e) {
    return Error::invalid("recover action", std::string(name()), action.params.dump(), e.what());
  }
  std::vector<numa::Island> target;
  std::vector<bool> limitsJournaled;
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
      limitsJournaled.push_back(item.contains("limits"));
      if (item.contains("limits")) {
        auto limits = parseLimitsJson(island.name, item.at("limits"));
        if (!limits) return limits.error();
        island.limits = *limits;
      }
      target.push_back(std::move(island));
    }
  } catch (const nlohmann::json::exception& e) {
    return Error::invalid("recover action", std::string(name()), action.params.dump(), e.what());
  }
  // Journals written before limits were recorded: keep what cgroupfs shows.
  if (auto current = enforcer_->islands()) {
    for (size_t i = 0; i < target.size(); ++i)
      for (const auto& c : *current)
        if (c.name == target[i].name && !limitsJournaled[i]) target[i].limits = c.limits;
  }
  if (auto applied = enforcer_->apply(target); !applied) return applied.error();
  return ActionOutcome::Completed;
}

nlohmann::json IslandSubsystem::describe() const {
  std::lock_guard lock(viewMutex_);
  nlohmann::json out = {{"enforced", enforced_},      {"desired", desired_.size()},
                        {"current", current_.size()}, {"changes_applied", changesApplied_},
                        {"pins", pins_.size()},       {"problems", problems_}};
  for (const auto& problem : memberProblems_) out["problems"].push_back(problem);
  if (!degraded_.empty()) out["degraded"] = nlohmann::json::array({degraded_});
  return out;
}

nlohmann::json IslandSubsystem::islandsJson() const {
  std::lock_guard lock(viewMutex_);
  nlohmann::json desired = nlohmann::json::array();
  for (const auto& d : desired_) {
    nlohmann::json item = islandStateValue(d);
    item["name"] = d.settings.name;
    item["mems"] = d.settings.mems.toString();
    item["source"] = d.source;
    desired.push_back(std::move(item));
  }
  nlohmann::json pins = nlohmann::json::array();
  for (const auto& pin : pins_)
    pins.push_back({{"workload", pin.workload}, {"island", pin.island}, {"source", pin.source}});
  nlohmann::json current = nlohmann::json::array();
  for (const auto& status : current_) {
    nlohmann::json item = statusJson(status);
    if (auto move = memoryMoves_.find(status.island.name); move != memoryMoves_.end())
      item["last_memory_move"] = numa::memoryMoveJson(move->second);
    current.push_back(std::move(item));
  }
  nlohmann::json out = {
      {"cgroup_mount", cgroupMount_},
      {"managed_root", managedRoot_},
      {"enforced", enforced_},
      {"degraded", degraded_.empty() ? nlohmann::json(nullptr) : nlohmann::json(degraded_)},
      {"desired", std::move(desired)},
      {"current", std::move(current)},
      {"pins", std::move(pins)},
      {"membership_problems", memberProblems_},
      {"problems", problems_}};
  out["topology"] =
      topologySummary_.empty() ? nlohmann::json(nullptr) : nlohmann::json(topologySummary_);
  out["shared_cpus"] = sharedCpus_.empty() ? nlohmann::json(nullptr) : nlohmann::json(sharedCpus_);
  return out;
}

Result<void> IslandSubsystem::validateDesired(const std::vector<DesiredIsland>& desired,
                                              const DesiredIsland* changed) const {
  std::vector<numa::Island> islands = toIslands(desired);
  {
    // Islands whose exclusivity nobody stated keep what cgroupfs showed.
    std::lock_guard lock(viewMutex_);
    for (size_t i = 0; i < islands.size(); ++i) {
      if (desired[i].exclusivity) continue;
      for (const auto& status : current_)
        if (status.island.name == islands[i].name)
          islands[i].exclusivity = status.island.exclusivity;
    }
  }
  if (auto valid = numa::validateIslands(*topology_, islands); !valid) return valid.error();
  if (changed == nullptr || changed->selectors.empty()) return ok();
  std::vector<numa::IslandSelector> selectors;
  bool libvirt = false;
  for (const auto& text : changed->selectors) {
    auto selector = numa::parseIslandSelector(text);
    if (!selector) return selector.error();
    libvirt = libvirt || selector->needsLibvirt();
    selectors.push_back(std::move(*selector));
  }
  std::lock_guard lock(pinnerMutex_);
  numa::VmPinner* vms = nullptr;
  if (libvirt) {
    auto connected = pinner();
    if (!connected) return connected.error();
    vms = *connected;
  }
  auto members = numa::resolveSelectors(selectors, cgroupMount_, managedRoot_, vms);
  if (!members) return members.error();
  return ok();
}

IslandChangeReply IslandSubsystem::changeIsland(IslandChange change, const std::string& name,
                                                const nlohmann::json& body,
                                                const ChangeOrigin& origin) const {
  std::lock_guard changing(changeMutex_);
  if (auto valid = numa::validateIslandName(name); !valid)
    return refuse(400, valid.error().message());
  if (!topology_) return refuse(503, "islands cannot be changed: " + topologyProblem_);
  if (change != IslandChange::Delete && !body.is_object())
    return refuse(400, "island '" + name + "': the body must be a JSON object, not " + body.dump());
  auto entries = store_.list(Keyspace::Desired, kIslandStatePrefix);
  if (!entries) return refuse(503, entries.error().message());
  std::vector<std::string> problems;
  std::vector<DesiredIsland> desired = desiredIslands(configured_(), *entries, problems);
  auto it = std::find_if(desired.begin(), desired.end(),
                         [&](const DesiredIsland& d) { return d.settings.name == name; });
  const std::string key = std::string(kIslandStatePrefix) + name;

  if (change == IslandChange::Delete) {
    if (it == desired.end()) return refuse(404, "no desired island '" + name + "'");
    auto pins = store_.list(Keyspace::Desired, kPinStatePrefix);
    if (!pins) return refuse(503, pins.error().message());
    for (const auto& entry : *pins)
      if (auto pin = parsePinStateValue(entry.key.substr(kPinStatePrefix.size()), entry.value);
          pin && pin->island == name)
        return refuse(409, "island '" + name + "' still holds pinned workload '" + pin->workload +
                               "'; unpin it first");
    auto revision = store_.put(Keyspace::Desired, key, {{"absent", true}}, origin);
    if (!revision) return refuse(503, "the change was not stored: " + revision.error().message());
    return {200, {{"deleted", name}, {"revision", *revision}}};
  }

  if (change == IslandChange::Create && it != desired.end())
    return refuse(409, "island '" + name + "' exists");
  if (change == IslandChange::Update && it == desired.end())
    return refuse(404, "no desired island '" + name + "'");
  DesiredIsland island;
  if (it != desired.end()) {
    island = *it;
  } else {
    island.settings.name = name;
  }
  island.source = "state";
  numa::CpuList claimedByOthers;
  for (const auto& d : desired)
    if (d.settings.name != name)
      claimedByOthers = numa::unionOf(claimedByOthers, toCpuList(d.settings.cpus));
  auto bad = [&](const std::string& why) {
    return refuse(400, "island '" + name + "': " + why + " (body " + body.dump() + ")");
  };
  const std::vector<std::string> allowed =
      change == IslandChange::Create
          ? std::vector<std::string>{"name",        "cpus",   "count",    "mems",
                                     "exclusivity", "limits", "selectors"}
          : std::vector<std::string>{"cpus",        "grow",   "shrink",   "mems",
                                     "exclusivity", "limits", "selectors"};
  for (const auto& [field, item] : body.items())
    if (std::find(allowed.begin(), allowed.end(), field) == allowed.end())
      return bad("unknown field '" + field + "'");
  if (body.contains("name") && body["name"] != name)
    return bad("the body names island " + body["name"].dump());
  const int sizings = static_cast<int>(body.contains("cpus")) + body.contains("count") +
                      body.contains("grow") + body.contains("shrink");
  if (sizings > 1) return bad("give only one of cpus, count, grow and shrink");
  if (change == IslandChange::Create && sizings == 0) return bad("give \"cpus\" or \"count\"");

  CpuSet requestedNodes;
  if (body.contains("mems")) {
    if (!body["mems"].is_string()) return bad("\"mems\" must be a node list string");
    auto nodes = CpuSet::parse(body["mems"].get<std::string>());
    if (!nodes) return bad(nodes.error().message());
    requestedNodes = *nodes;
    island.settings.mems = *nodes;
  }
  numa::IslandAllocator allocator(*topology_, claimedByOthers);
  for (const char* field : {"count", "grow", "shrink"}) {
    if (!body.contains(field)) continue;
    if (!body[field].is_number_unsigned() || body[field].get<unsigned>() == 0)
      return bad(std::string(field) + " " + body[field].dump() + " must be a positive integer");
    const unsigned n = body[field].get<unsigned>();
    const numa::CpuList current = toCpuList(island.settings.cpus);
    Result<numa::Placement> placed =
        std::string_view(field) == "count" ? allocator.place(name, n, toCpuList(requestedNodes))
        : std::string_view(field) == "grow"
            ? numa::IslandAllocator(*topology_, numa::unionOf(claimedByOthers, current))
                  .grow(name, current, n)
            : numa::IslandAllocator(*topology_, numa::unionOf(claimedByOthers, current))
                  .shrink(name, current, n);
    if (!placed) return bad(placed.error().message());
    island.settings.cpus = toCpuSet(placed->cpus);
  }
  if (body.contains("cpus")) {
    if (!body["cpus"].is_string()) return bad("\"cpus\" must be a CPU list string");
    auto cpus = CpuSet::parse(body["cpus"].get<std::string>());
    if (!cpus) return bad(cpus.error().message());
    island.settings.cpus = *cpus;
  }
  if (body.contains("exclusivity")) {
    auto exclusivity = body["exclusivity"].is_string()
                           ? numa::parseExclusivity(body["exclusivity"].get<std::string>())
                           : std::nullopt;
    if (!exclusivity)
      return bad("exclusivity " + body["exclusivity"].dump() + " is not member, root or isolated");
    island.exclusivity = *exclusivity;
  }
  if (body.contains("limits")) {
    // Named limits replace those stated before; the others stay.
    nlohmann::json merged =
        island.limits ? numa::limitsJson(*island.limits) : nlohmann::json::object();
    if (!body["limits"].is_object()) return bad("\"limits\" must be an object");
    for (const auto& [limit, value] : body["limits"].items()) merged[limit] = value;
    auto limits = parseLimitsJson(name, merged);
    if (!limits) return bad(limits.error().detail);
    island.limits = *limits;
  }
  if (body.contains("selectors")) {
    if (!body["selectors"].is_array()) return bad("\"selectors\" must be a list of selectors");
    island.selectors.clear();
    for (const auto& selector : body["selectors"]) {
      if (!selector.is_string()) return bad("selector " + selector.dump() + " is not a string");
      island.selectors.push_back(selector.get<std::string>());
    }
  }
  // The value as it will be stored must read back the same.
  const nlohmann::json value = islandStateValue(island);
  auto reparsed = parseIslandStateValue(name, value);
  if (!reparsed) return bad(reparsed.error().detail);
  if (it != desired.end())
    *it = island;
  else
    desired.push_back(island);
  if (auto valid = validateDesired(desired, &island); !valid) {
    const Error& error = valid.error();
    return refuse(error.errnum != 0 ? 503 : 400, error.message());
  }
  auto revision = store_.put(Keyspace::Desired, key, value, origin);
  if (!revision) return refuse(503, "the change was not stored: " + revision.error().message());
  nlohmann::json out = value;
  out["name"] = name;
  return {change == IslandChange::Create ? 201 : 200,
          {{"island", std::move(out)}, {"revision", *revision}}};
}

IslandChangeReply IslandSubsystem::changePin(const std::string& workload,
                                             const nlohmann::json& body,
                                             const ChangeOrigin& origin) const {
  std::lock_guard changing(changeMutex_);
  auto name = parseWorkloadName(workload);
  if (!name) return refuse(400, name.error().message());
  const std::string key = std::string(kPinStatePrefix) + name->key();
  if (auto valid = validateStateKey(key); !valid) return refuse(400, valid.error().message());
  if (body.is_null()) {
    auto revision = store_.remove(Keyspace::Desired, key, origin);
    if (!revision) return refuse(503, "the change was not stored: " + revision.error().message());
    if (!*revision) return refuse(404, "workload '" + name->key() + "' is not pinned");
    return {200, {{"unpinned", name->key()}, {"revision", **revision}}};
  }
  auto pin = parsePinStateValue(name->key(), body);
  if (!pin) return refuse(400, pin.error().message());
  if (pin->island != numa::kSharedIslandName) {
    auto entries = store_.list(Keyspace::Desired, kIslandStatePrefix);
    if (!entries) return refuse(503, entries.error().message());
    std::vector<std::string> problems;
    auto desired = desiredIslands(configured_(), *entries, problems);
    if (std::none_of(desired.begin(), desired.end(),
                     [&](const DesiredIsland& d) { return d.settings.name == pin->island; }))
      return refuse(404, "no desired island '" + pin->island + "'");
  }
  if (name->kind == WorkloadKind::Process) {
    if (!Dir::open("/proc/" + std::to_string(name->pid)))
      return refuse(
          404, "no process " + std::to_string(name->pid) + " (workload '" + name->key() + "')");
  } else {
    std::lock_guard lock(pinnerMutex_);
    auto vms = pinner();
    if (!vms) return refuse(503, "libvirt is not reachable: " + vms.error().message());
    if (auto pinning = (*vms)->pinning(name->domain); !pinning)
      return refuse(404, "unknown VM '" + name->domain + "': " + pinning.error().message());
  }
  auto revision = store_.put(Keyspace::Desired, key, pinStateValue(*pin), origin);
  if (!revision) return refuse(503, "the change was not stored: " + revision.error().message());
  return {200,
          {{"workload", pin->workload}, {"pin", pinStateValue(*pin)}, {"revision", *revision}}};
}

}  // namespace Atoll
