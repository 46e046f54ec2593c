#pragma once
// /proc/self/mountinfo, parsed: where the cgroup2 hierarchy is mounted (pure
// unified layout at /sys/fs/cgroup, hybrid layout at /sys/fs/cgroup/unified).
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/Result.h"

namespace Atoll::capability {

inline constexpr std::string_view kMountInfoPath = "/proc/self/mountinfo";

struct MountEntry {
  std::string root;        // path inside the filesystem that is mounted
  std::string mountPoint;  // with the kernel's octal escapes (\040) decoded
  std::string fsType;      // "cgroup2", "cgroup", "tmpfs", ...
  std::string source;
};

Result<std::vector<MountEntry>> parseMountInfo(std::string_view text,
                                               const std::string& sourceName);

// The cgroup2 mount Atoll should use: /sys/fs/cgroup, else
// /sys/fs/cgroup/unified, else the first cgroup2 mount found.
std::optional<MountEntry> findCgroup2Mount(const std::vector<MountEntry>& mounts);

// True when cgroup v1 hierarchies are mounted too (the hybrid layout).
bool hasCgroup1Mounts(const std::vector<MountEntry>& mounts);

}  // namespace Atoll::capability
