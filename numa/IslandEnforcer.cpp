#include "numa/IslandEnforcer.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <thread>

#include "numa/CpuSet.h"

namespace Atoll::numa {

namespace cf = cgroupfile;

namespace {

// Controllers islands use, enabled for the islands when the host has them.
const std::vector<std::string> kIslandControllers = {"cpuset", "cpu", "memory", "io"};
// The kernel may call a cgroup busy for a moment after its last process left.
constexpr int kRemoveAttempts = 100;
constexpr auto kRemoveRetryDelay = std::chrono::milliseconds(10);

// What `file` takes back to hold again what it read as `previous`.
std::string restorableValue(std::string_view file, const std::string& previous) {
  if (file != cf::kCpusetPartition) return previous;
  auto type = partitionType(previous);
  return type ? std::string(exclusivityName(*type)) : previous;
}

// Writes value unless the file already holds it, journaling the old value.
Result<void> writeJournaled(CgroupChangeJournal& journal, const CgroupV2& group,
                            std::string_view file, const std::string& value) {
  auto previous = group.read(file);
  if (!previous) return previous.error();
  if (*previous == value) return ok();
  auto written = group.write(file, value);
  if (!written) return written;
  journal.wrote(group.path(), file, restorableValue(file, *previous));
  return ok();
}

Result<void> checkPartition(const CgroupV2& group) {
  auto state = group.read(cf::kCpusetPartition);
  if (!state) return state.error();
  if (std::string problem = partitionProblem(*state); !problem.empty())
    return Error::invalid("partition", group.path() + "/" + std::string(cf::kCpusetPartition),
                          *state, "the kernel refused the partition: " + problem);
  return ok();
}

Result<void> writeLimits(CgroupChangeJournal& journal, const CgroupV2& group,
                         const IslandLimits& limits) {
  auto put = [&](std::string_view file, const std::string& value) -> Result<void> {
    if (!group.has(file))
      return Error::invalid("write", group.path() + "/" + std::string(file), value,
                            "no such control file: its controller is not enabled for islands");
    return writeJournaled(journal, group, file, value);
  };
  std::vector<std::pair<std::string_view, std::optional<std::string>>> values = {
      {cf::kCpuWeight,
       limits.cpuWeight ? std::optional(std::to_string(*limits.cpuWeight)) : std::nullopt},
      {cf::kCpuMax, limits.cpuMax},
      {cf::kMemoryMin,
       limits.memoryMin ? std::optional(std::to_string(*limits.memoryMin)) : std::nullopt},
      {cf::kMemoryLow,
       limits.memoryLow ? std::optional(std::to_string(*limits.memoryLow)) : std::nullopt},
      {cf::kMemoryHigh,
       limits.memoryHigh ? std::optional(std::to_string(*limits.memoryHigh)) : std::nullopt},
      {cf::kMemoryMax,
       limits.memoryMax ? std::optional(std::to_string(*limits.memoryMax)) : std::nullopt},
  };
  for (const auto& [file, value] : values) {
    if (!value) continue;
    if (auto written = put(file, *value); !written) return written;
  }
  if (limits.ioWeight) {
    if (!group.has(cf::kIoWeight))
      return Error::invalid("write", group.path() + "/" + std::string(cf::kIoWeight),
                            std::to_string(*limits.ioWeight),
                            "no such control file: its controller is not enabled for islands");
    auto current = group.read(cf::kIoWeight);
    if (!current) return current.error();
    const std::string wanted = std::to_string(*limits.ioWeight);
    if (ioDefaultWeight(*current) != wanted) {
      auto written = group.write(cf::kIoWeight, "default " + wanted);
      if (!written) return written;
      journal.wrote(group.path(), cf::kIoWeight, "default " + ioDefaultWeight(*current));
    }
  }
  return ok();
}

CpuList unionOfCpus(const std::vector<Island>& islands) {
  CpuList out;
  for (const auto& island : islands) out = unionOf(out, island.cpus);
  return out;
}

CpuList allNodes(const Topology& topology) {
  CpuList out;
  for (const auto& node : topology.nodes()) out.push_back(node.osIndex);
  return out;
}

}  // namespace

void CgroupChangeJournal::wrote(std::string group, std::string_view file, std::string previous) {
  entries_.push_back({std::move(group), std::string(file), std::move(previous)});
}

void CgroupChangeJournal::created(std::string path) {
  entries_.push_back({std::move(path), {}, {}});
}

std::vector<Error> CgroupChangeJournal::rollBack() {
  std::vector<Error> notRestored;
  for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) {
    const Entry& entry = *it;
    if (entry.file.empty()) {
      const auto slash = entry.path.rfind('/');
      auto parent = Dir::open(entry.path.substr(0, slash));
      Result<void> removed =
          parent ? parent->removeChild(entry.path.substr(slash + 1)) : Result<void>(parent.error());
      if (!removed) {
        Error error = removed.error();
        error.path = entry.path;
        notRestored.push_back(std::move(error));
      }
      continue;
    }
    auto group = Dir::open(entry.path);
    Result<void> written =
        group ? group->writeFile(entry.file, entry.previous) : Result<void>(group.error());
    if (!written) {
      // Named by the file and the value it was to get back, also when the
      // cgroup itself could not be opened.
      Error error = written.error();
      error.path = entry.path + "/" + entry.file;
      error.value = entry.previous;
      notRestored.push_back(std::move(error));
    }
  }
  entries_.clear();
  return notRestored;
}

Error afterRollback(Error failure, const std::vector<Error>& notRestored) {
  failure.detail += failure.detail.empty() ? "" : "; ";
  if (notRestored.empty()) {
    failure.detail += "nothing was changed (what had been applied was rolled back)";
    return failure;
  }
  failure.detail += "the rollback could not put back " + std::to_string(notRestored.size()) +
                    (notRestored.size() == 1 ? " change" : " changes") +
                    ", left as this change made them:";
  for (size_t i = 0; i < notRestored.size(); ++i)
    failure.detail += (i == 0 ? " " : "; ") + notRestored[i].message();
  return failure;
}

std::optional<Exclusivity> partitionType(std::string_view text) {
  text = trim(text);
  return parseExclusivity(text.substr(0, text.find(' ')));
}

Result<IslandEnforcer> IslandEnforcer::open(const Topology& topology, std::string mount,
                                            std::string managedRoot) {
  if (managedRoot.empty() || managedRoot.front() == '/' ||
      managedRoot.find("..") != std::string::npos)
    return Error::invalid("open", managedRoot, managedRoot,
                          "the managed root is a relative path below the cgroup2 mount");
  auto root = Dir::open(mount);
  if (!root) return root.error();
  if (!root->exists(cf::kControllers))
    return Error::invalid("open", mount, {}, "not a cgroup v2 mount (no cgroup.controllers)");
  return IslandEnforcer(topology, std::move(mount), std::move(managedRoot));
}

Result<CgroupV2> IslandEnforcer::ensureManagedRoot(std::vector<std::string>& created) const {
  auto mount = CgroupV2::open(mountPath_);
  if (!mount) return mount.error();
  auto enabled = mount->enabledControllers();
  if (!enabled) return enabled.error();
  if (std::find(enabled->begin(), enabled->end(), "cpuset") == enabled->end())
    return Error::invalid("islands", mountPath_ + "/" + std::string(cf::kSubtreeControl),
                          mount->read(cf::kSubtreeControl).value_or(""),
                          "the cpuset controller is not enabled for children of the cgroup2 "
                          "mount; islands need it");
  auto slash = managedPath_.rfind('/');
  auto parent = Dir::open(managedPath_.substr(0, slash));
  if (!parent) return parent.error();
  const std::string leaf = managedPath_.substr(slash + 1);
  if (!parent->exists(leaf)) {
    auto made = parent->makeChild(leaf);
    if (!made) return made.error();
    created.push_back(managedPath_);
  }
  auto managed = CgroupV2::open(managedPath_);
  if (!managed) return managed.error();
  auto available = managed->controllers();
  if (!available) return available.error();
  std::vector<std::string> wanted;
  for (const auto& name : kIslandControllers)
    if (std::find(available->begin(), available->end(), name) != available->end())
      wanted.push_back(name);
  if (auto enabledHere = managed->enableControllers(wanted); !enabledHere)
    return enabledHere.error();
  return managed;
}

Result<Island> IslandEnforcer::readIsland(const CgroupV2& group, const std::string& name) const {
  Island island;
  island.name = name;
  auto cpus = group.read(cf::kCpusetCpus);
  if (!cpus) return cpus.error();
  auto parsedCpus = parseCpuList(*cpus, group.path() + "/" + std::string(cf::kCpusetCpus));
  if (!parsedCpus) return parsedCpus.error();
  island.cpus = *parsedCpus;
  auto mems = group.read(cf::kCpusetMems);
  if (!mems) return mems.error();
  auto parsedMems = parseCpuList(*mems, group.path() + "/" + std::string(cf::kCpusetMems));
  if (!parsedMems) return parsedMems.error();
  island.memNodes = *parsedMems;
  if (group.has(cf::kCpusetPartition)) {
    auto state = group.read(cf::kCpusetPartition);
    if (!state) return state.error();
    island.exclusivity = partitionType(*state).value_or(Exclusivity::Shared);
  }
  auto number = [&](std::string_view file) -> std::optional<std::uint64_t> {
    if (!group.has(file)) return std::nullopt;
    auto text = group.read(file);
    return text ? parseMemoryValue(*text) : std::nullopt;
  };
  if (auto weight = number(cf::kCpuWeight)) island.limits.cpuWeight = unsigned(*weight);
  if (group.has(cf::kCpuMax)) {
    if (auto max = group.read(cf::kCpuMax)) island.limits.cpuMax = *max;
  }
  island.limits.memoryMin = number(cf::kMemoryMin);
  island.limits.memoryLow = number(cf::kMemoryLow);
  island.limits.memoryHigh = number(cf::kMemoryHigh);
  island.limits.memoryMax = number(cf::kMemoryMax);
  if (group.has(cf::kIoWeight)) {
    if (auto io = group.read(cf::kIoWeight)) {
      if (auto weight = parseMemoryValue(ioDefaultWeight(*io)))
        island.limits.ioWeight = unsigned(*weight);
    }
  }
  return island;
}

Result<std::vector<IslandStatus>> IslandEnforcer::status() const {
  std::vector<IslandStatus> out;
  auto managed = Dir::open(managedPath_);
  if (!managed) {
    if (managed.error().errnum == ENOENT) return out;
    return managed.error();
  }
  auto entries = managed->list();
  if (!entries) return entries.error();
  std::sort(entries->begin(), entries->end());
  for (const auto& name : *entries) {
    if (!managed->exists(name + "/" + std::string(cf::kProcs))) continue;
    auto group = CgroupV2::open(managedPath_ + "/" + name);
    if (!group) return group.error();
    IslandStatus status;
    auto island = readIsland(*group, name);
    if (!island) return island.error();
    status.island = std::move(*island);
    auto effectiveCpus = group->read(cf::kCpusetCpusEffective);
    if (effectiveCpus) status.effectiveCpus = parseCpuList(*effectiveCpus, "").value_or(CpuList{});
    auto effectiveMems = group->read(cf::kCpusetMemsEffective);
    if (effectiveMems) status.effectiveMems = parseCpuList(*effectiveMems, "").value_or(CpuList{});
    if (group->has(cf::kCpusetPartition))
      status.partitionProblem = partitionProblem(group->read(cf::kCpusetPartition).value_or(""));
    auto members = group->processes();
    if (!members) return members.error();
    status.members = std::move(*members);
    out.push_back(std::move(status));
  }
  return out;
}

Result<std::vector<Island>> IslandEnforcer::islands() const {
  auto all = status();
  if (!all) return all.error();
  std::vector<Island> out;
  for (auto& status : *all) out.push_back(std::move(status.island));
  return out;
}

Result<void> IslandEnforcer::apply(const std::vector<Island>& desired) {
  notRolledBack_.clear();
  if (auto valid = validateIslands(topology_, desired); !valid) return valid;
  auto current = islands();
  if (!current) return current.error();
  for (const auto& island : *current) {
    bool kept = std::any_of(desired.begin(), desired.end(),
                            [&](const Island& wanted) { return wanted.name == island.name; });
    if (!kept)
      return Error::invalid("apply islands", managedPath_ + "/" + island.name, island.name,
                            "the desired set omits an existing island; remove it explicitly");
  }
  auto find = [&](const std::string& name) -> const Island* {
    for (const auto& island : *current)
      if (island.name == name) return &island;
    return nullptr;
  };

  CgroupChangeJournal journal;
  auto failed = [&](Error error) -> Result<void> {
    notRolledBack_ = journal.rollBack();
    return afterRollback(std::move(error), notRolledBack_);
  };

  std::vector<std::string> createdRoot;
  auto managed = ensureManagedRoot(createdRoot);
  // Journaled first, so removed last: after everything written inside.
  for (auto& path : createdRoot) journal.created(std::move(path));
  if (!managed) return failed(managed.error());
  const bool partitions = managed->has(cf::kCpusetPartition);
  for (const auto& island : desired) {
    if (isExclusive(island.exclusivity) && !partitions)
      return failed(Error::invalid("apply islands", island.name,
                                   std::string(exclusivityName(island.exclusivity)),
                                   "this kernel has no cpuset.cpus.partition: exclusive islands "
                                   "are not supported, use a shared island"));
  }
  const std::string nodes = formatCpuList(allNodes(topology_));
  if (auto wrote = writeJournaled(journal, *managed, cf::kCpusetMems, nodes); !wrote)
    return failed(wrote.error());

  // The managed root first grows to hold every island's CPUs.
  auto managedCpusText = managed->read(cf::kCpusetCpus);
  if (!managedCpusText) return failed(managedCpusText.error());
  const CpuList managedCpus = parseCpuList(*managedCpusText, managed->path()).value_or(CpuList{});
  const CpuList wantedCpus = unionOfCpus(desired);
  if (auto wrote = writeJournaled(journal, *managed, cf::kCpusetCpus,
                                  formatCpuList(unionOf(managedCpus, wantedCpus)));
      !wrote)
    return failed(wrote.error());
  if (partitions && !wantedCpus.empty()) {
    if (auto wrote = writeJournaled(journal, *managed, cf::kCpusetPartition, "root"); !wrote)
      return failed(wrote.error());
    if (auto valid = checkPartition(*managed); !valid) return failed(valid.error());
  }

  // CPUs an existing island still holds once shrinking islands gave theirs
  // up below: one moving to wholly new CPUs keeps its old ones until it is
  // written.
  auto heldAfterShrink = [&](const Island& island) -> CpuList {
    const Island* before = find(island.name);
    if (!before) return {};
    CpuList kept = intersectionOf(before->cpus, island.cpus);
    return kept.empty() ? before->cpus : kept;
  };
  auto wasExclusive = [&](const Island& island) {
    const Island* before = find(island.name);
    return before && isExclusive(before->exclusivity);
  };
  // A sibling's cpuset.cpus overlapping a partition's CPUs makes the kernel
  // invalidate the partition, so an exclusive island that takes CPUs another
  // island still holds, or holds CPUs another one takes (islands swapping
  // CPUs, or one taking those another moves away from, in whatever order
  // the desired set lists them), is a member while CPUs move; it becomes a
  // partition again with the other exclusive islands below.
  auto movesAcrossAnother = [&](const Island& island) {
    const CpuList held = heldAfterShrink(island);
    for (const auto& other : desired) {
      if (other.name == island.name) continue;
      if (!intersectionOf(island.cpus, heldAfterShrink(other)).empty() ||
          !intersectionOf(other.cpus, held).empty())
        return true;
    }
    return false;
  };
  // Islands leaving exclusivity, and those moving across another, release
  // their CPUs before others take them.
  for (const auto& island : desired) {
    if (wasExclusive(island) && (!isExclusive(island.exclusivity) || movesAcrossAnother(island))) {
      auto group = CgroupV2::open(managedPath_ + "/" + island.name);
      if (!group) return failed(group.error());
      if (auto wrote = writeJournaled(journal, *group, cf::kCpusetPartition, "member"); !wrote)
        return failed(wrote.error());
    }
  }
  // Shrinking islands give CPUs up before growing ones claim them.
  for (const auto& island : desired) {
    const Island* before = find(island.name);
    if (!before) continue;
    CpuList kept = intersectionOf(before->cpus, island.cpus);
    if (kept.empty() || kept == before->cpus) continue;
    auto group = CgroupV2::open(managedPath_ + "/" + island.name);
    if (!group) return failed(group.error());
    if (auto wrote = writeJournaled(journal, *group, cf::kCpusetCpus, formatCpuList(kept)); !wrote)
      return failed(wrote.error());
  }
  for (const auto& island : desired) {
    if (!find(island.name)) {
      auto managedDir = Dir::open(managedPath_);
      if (!managedDir) return failed(managedDir.error());
      if (auto made = managedDir->makeChild(island.name); !made) return failed(made.error());
      journal.created(managedPath_ + "/" + island.name);
    }
    auto group = CgroupV2::open(managedPath_ + "/" + island.name);
    if (!group) return failed(group.error());
    for (auto [file, value] : {std::pair{cf::kCpusetCpus, formatCpuList(island.cpus)},
                               std::pair{cf::kCpusetMems, formatCpuList(island.memNodes)}}) {
      if (auto wrote = writeJournaled(journal, *group, file, value); !wrote)
        return failed(wrote.error());
    }
    if (auto limited = writeLimits(journal, *group, island.limits); !limited)
      return failed(limited.error());
  }
  for (const auto& island : desired) {
    if (!isExclusive(island.exclusivity)) continue;
    auto group = CgroupV2::open(managedPath_ + "/" + island.name);
    if (!group) return failed(group.error());
    if (auto wrote = writeJournaled(journal, *group, cf::kCpusetPartition,
                                    std::string(exclusivityName(island.exclusivity)));
        !wrote)
      return failed(wrote.error());
    if (auto valid = checkPartition(*group); !valid) return failed(valid.error());
  }
  // Finally the managed root gives back CPUs no island holds any more.
  if (auto wrote = writeJournaled(journal, *managed, cf::kCpusetCpus, formatCpuList(wantedCpus));
      !wrote)
    return failed(wrote.error());
  return ok();
}

Result<void> IslandEnforcer::remove(const std::string& name) {
  if (auto named = validateIslandName(name); !named) return named;
  auto current = islands();
  if (!current) return current.error();
  std::vector<Island> rest;
  bool found = false;
  for (auto& island : *current) {
    if (island.name == name)
      found = true;
    else
      rest.push_back(island);
  }
  if (!found)
    return Error::invalid("remove island", managedPath_ + "/" + name, name, "no such island");
  auto group = CgroupV2::open(managedPath_ + "/" + name);
  if (!group) return group.error();
  auto shared = CgroupV2::open(mountPath_);
  if (!shared) return shared.error();
  auto members = group->processes();
  if (!members) return members.error();
  for (pid_t pid : *members) {
    auto moved = shared->moveProcess(pid);
    if (!moved && moved.error().errnum != ESRCH) return moved;
  }
  if (group->has(cf::kCpusetPartition)) {
    auto state = group->read(cf::kCpusetPartition);
    if (state && partitionType(*state) != Exclusivity::Shared) {
      if (auto wrote = group->write(cf::kCpusetPartition, "member"); !wrote) return wrote;
    }
  }
  auto managedDir = Dir::open(managedPath_);
  if (!managedDir) return managedDir.error();
  for (int attempt = 0;; ++attempt) {
    auto removed = managedDir->removeChild(name);
    if (removed) break;
    if (removed.error().errnum != EBUSY || attempt + 1 >= kRemoveAttempts) return removed;
    std::this_thread::sleep_for(kRemoveRetryDelay);
  }
  auto managed = CgroupV2::open(managedPath_);
  if (!managed) return managed.error();
  const CpuList remaining = unionOfCpus(rest);
  if (remaining.empty() && managed->has(cf::kCpusetPartition)) {
    if (auto wrote = managed->write(cf::kCpusetPartition, "member"); !wrote) return wrote;
  }
  return managed->write(cf::kCpusetCpus, formatCpuList(remaining));
}

Result<void> IslandEnforcer::pin(const std::string& name, pid_t pid) {
  if (auto named = validateIslandName(name); !named) return named;
  if (pid <= 0 || !Dir::open("/proc/" + std::to_string(pid)))
    return Error::invalid("pin", "/proc/" + std::to_string(pid), std::to_string(pid),
                          "no such process");
  auto managed = Dir::open(managedPath_);
  if (!managed || !managed->exists(name + "/" + std::string(cf::kProcs)))
    return Error::invalid("pin", managedPath_ + "/" + name, name, "no such island");
  auto group = CgroupV2::open(managedPath_ + "/" + name);
  if (!group) return group.error();
  return group->moveProcess(pid);
}

Result<void> IslandEnforcer::unpin(pid_t pid) {
  const std::string cgroupFile = "/proc/" + std::to_string(pid) + "/cgroup";
  auto membership = readFile(cgroupFile);
  if (!membership)
    return Error::invalid("unpin", cgroupFile, std::to_string(pid), "no such process");
  // The v2 line reads "0::/atoll.slice/<island>".
  const std::string prefix = "0::/" + managedPath_.substr(mountPath_.size() + 1) + "/";
  if (membership->find(prefix) == std::string::npos)
    return Error::invalid("unpin", cgroupFile, std::to_string(pid),
                          "process is not in an island (" + std::string(trim(*membership)) + ")");
  auto shared = CgroupV2::open(mountPath_);
  if (!shared) return shared.error();
  return shared->moveProcess(pid);
}

Result<PageMoveReport> IslandEnforcer::moveMemory(const std::string& name, const CpuList& nodes) {
  auto current = islands();
  if (!current) return current.error();
  auto it = std::find_if(current->begin(), current->end(),
                         [&](const Island& island) { return island.name == name; });
  if (it == current->end())
    return Error::invalid("move memory", managedPath_ + "/" + name, name, "no such island");
  it->memNodes = nodes;
  if (auto valid = validateIslands(topology_, *current); !valid) return valid.error();
  auto group = CgroupV2::open(managedPath_ + "/" + name);
  if (!group) return group.error();
  auto members = group->processes();
  if (!members) return members.error();
  auto before = processPlacement(*members);
  if (!before) return before.error();
  const auto start = std::chrono::steady_clock::now();
  // The kernel migrates the members' pages before this write returns.
  if (auto wrote = group->write(cf::kCpusetMems, formatCpuList(nodes)); !wrote)
    return wrote.error();
  const auto took = std::chrono::steady_clock::now() - start;
  auto after = processPlacement(*members);
  if (!after) return after.error();
  return comparePlacement(std::move(*before), std::move(*after), nodes,
                          std::chrono::duration_cast<std::chrono::nanoseconds>(took));
}

}  // namespace Atoll::numa
