#pragma once
// cgroup v2 probes: where the hierarchy is mounted, which controllers it
// offers, and whether cpuset partitions exist. Islands are cgroup v2
// subtrees, so these decide whether Atoll can build any.
#include <array>
#include <string>
#include <string_view>

#include "kernel-configs/Feature.h"
#include "util/Result.h"

namespace Atoll::capability {

inline constexpr std::string_view kControllersFile = "cgroup.controllers";
inline constexpr std::string_view kSubtreeControlFile = "cgroup.subtree_control";
inline constexpr std::string_view kCpusetPartitionFile = "cpuset.cpus.partition";

// Controllers islands are built from, with the kernel option behind each.
struct NeededController {
  std::string_view name;
  std::string_view configOption;
};
inline constexpr std::array<NeededController, 5> kNeededControllers = {{
    {"cpuset", "CONFIG_CPUSETS"},
    {"cpu", "CONFIG_CGROUP_SCHED"},
    {"memory", "CONFIG_MEMCG"},
    {"io", "CONFIG_BLK_CGROUP"},
    {"pids", "CONFIG_CGROUP_PIDS"},
}};

struct Cgroup2Location {
  std::string path;     // mount point of the cgroup2 hierarchy
  bool hybrid = false;  // cgroup v1 hierarchies are mounted as well
};

// Finds the cgroup2 mount in a mountinfo file (normally /proc/self/mountinfo).
Result<Cgroup2Location> locateCgroup2(const std::string& mountInfoPath);

Feature assessCgroup2Mount(const Result<Cgroup2Location>& location);

// Decides cgroup2.controllers from the contents of the mount's
// cgroup.controllers and cgroup.subtree_control files.
Feature assessControllers(std::string_view controllersText, std::string_view subtreeControlText,
                          const Cgroup2Location& location);

Feature probeControllers(const Result<Cgroup2Location>& location);
// Creates a scratch child (only when cpuset is already enabled for children
// of the mount) and looks for cpuset.cpus.partition in it.
Feature probeCpusetPartition(const Result<Cgroup2Location>& location);

}  // namespace Atoll::capability
