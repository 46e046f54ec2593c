#pragma once
// Makes cgroup v2 hold the islands: one cgroup per island under a managed
// root (default "atoll.slice" under the cgroup2 mount), which Atoll alone
// writes to. The managed root becomes a cpuset partition holding every
// island's CPUs, so islands take their CPUs away from the rest of the host
// (the shared island); exclusive islands are partitions of their own inside
// it. Nothing outside the managed root is written except the processes
// explicitly pinned or unpinned. Desired state lives only in cgroupfs here:
// what the islands' cgroups show is read back as the current islands.
#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "numa/CgroupV2.h"
#include "numa/Island.h"
#include "numa/PageMigration.h"
#include "numa/Topology.h"
#include "util/Result.h"

namespace Atoll::numa {

inline constexpr std::string_view kDefaultCgroupMount = "/sys/fs/cgroup";
inline constexpr std::string_view kDefaultManagedRoot = "atoll.slice";

struct IslandStatus {
  Island island;
  CpuList effectiveCpus;
  CpuList effectiveMems;
  std::string partitionProblem;  // the kernel's reason when the partition is invalid
  std::vector<pid_t> members;
};

// The partition type a cpuset.cpus.partition reading names ("member",
// "root" or "isolated"), also when the kernel appended "invalid (reason)" to
// a partition it refused: the file takes back only the type, so a rollback
// writes this. Nothing for text that names no type.
std::optional<Exclusivity> partitionType(std::string_view text);

// What a change under cgroupfs wrote and created, so that a failure
// half-way can put it back.
class CgroupChangeJournal {
 public:
  // `file` in the cgroup directory `group` held `previous` (in the form the
  // file takes back) before the change wrote it.
  void wrote(std::string group, std::string_view file, std::string previous);
  // The cgroup directory `path` did not exist before the change.
  void created(std::string path);

  // Undoes every change, newest first, and goes on past one that fails so
  // that as much as possible is put back. Returns what could not be: each
  // with the file or cgroup, the value it was to get back and the errno.
  std::vector<Error> rollBack();

 private:
  struct Entry {
    std::string path;
    std::string file;  // empty: `path` was created
    std::string previous;
  };
  std::vector<Entry> entries_;
};

// The error a change that failed with `failure` returns once its rollback
// left `notRestored`: that nothing was changed, or which files and cgroups
// the rollback could not put back (path, value, errno), in the detail, since
// the host then holds neither the old state nor the new one.
Error afterRollback(Error failure, const std::vector<Error>& notRestored);

class IslandEnforcer {
 public:
  // `mount`: the cgroup2 mount; `managedRoot`: a relative path under it.
  static Result<IslandEnforcer> open(const Topology& topology,
                                     std::string mount = std::string(kDefaultCgroupMount),
                                     std::string managedRoot = std::string(kDefaultManagedRoot));

  // Islands as cgroupfs shows them (none when the managed root is absent).
  Result<std::vector<IslandStatus>> status() const;
  Result<std::vector<Island>> islands() const;

  // Creates or updates islands so that cgroupfs holds `desired`, the
  // complete set (every current island must be in it; remove() deletes).
  // The whole set is validated before anything is written; when a write
  // fails half-way, what was written is put back (afterRollback: the error
  // names what could not be).
  Result<void> apply(const std::vector<Island>& desired);
  // What the latest apply()'s rollback could not put back, one error each
  // (path, value, errno): for a caller to log, or to tell a change rolled
  // back from one left half-way. Empty after an apply() that succeeded or
  // rolled back completely.
  const std::vector<Error>& notRolledBack() const { return notRolledBack_; }
  // Moves the island's members to the shared island, then removes it.
  Result<void> remove(const std::string& name);
  // Moves a whole process into an island / back to the shared island.
  Result<void> pin(const std::string& name, pid_t pid);
  Result<void> unpin(pid_t pid);
  // Changes an island's memory nodes; the kernel moves its members' pages
  // (cgroup v2 cpuset.mems migrates them). Reports bytes moved and time.
  Result<PageMoveReport> moveMemory(const std::string& name, const CpuList& nodes);

  const std::string& managedPath() const { return managedPath_; }
  const std::string& mountPath() const { return mountPath_; }

 private:
  IslandEnforcer(const Topology& topology, std::string mount, std::string managedRoot)
      : topology_(topology),
        mountPath_(std::move(mount)),
        managedPath_(mountPath_ + "/" + managedRoot) {}
  Result<CgroupV2> ensureManagedRoot(std::vector<std::string>& created) const;
  Result<Island> readIsland(const CgroupV2& group, const std::string& name) const;

  const Topology& topology_;
  std::string mountPath_;
  std::string managedPath_;
  std::vector<Error> notRolledBack_;
};

}  // namespace Atoll::numa
