#pragma once
// Finds workload cgroups under the cgroup2 mount: directories whose path
// (relative to the mount) matches a selector glob, and libvirt domains'
// cgroups. Each found workload carries the ids of its whole subtree, because
// the kernel attributes a thread to its leaf cgroup (a VM's vcpuN child).
#include <cstdint>
#include <string>
#include <vector>

#include "bpf/collector/WorkloadRegistry.h"
#include "util/Fs.h"

namespace Atoll::telemetry {

// The cgroup2 id of a directory: its inode number, as the kernel's
// bpf_get_current_cgroup_id() reports it.
Result<uint64_t> cgroupIdOf(const Dir& cgroup);

struct DiscoveryOptions {
  std::vector<std::string> selectors;  // e.g. "machine.slice/*"
  int maxDepth = 6;                    // directory levels walked below the mount
};

// A workload's cgroup and every cgroup id in its subtree (itself first).
struct WorkloadCgroup {
  DiscoveredCgroup cgroup;
  std::vector<uint64_t> subtreeIds;
};

// Selector matches; a matched directory's subtree is not matched again.
// A directory that vanishes mid-walk is skipped, not an error.
Result<std::vector<WorkloadCgroup>> discoverBySelectors(const Dir& mount,
                                                        const DiscoveryOptions& options);
// The subtree ids of one cgroup (used for libvirt domains).
Result<WorkloadCgroup> describeCgroup(const Dir& mount, const std::string& relativePath);

}  // namespace Atoll::telemetry
