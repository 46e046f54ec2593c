#include "kernel-configs/CgroupProbes.h"

#include <set>
#include <sstream>

#include "kernel-configs/MountInfo.h"
#include "kernel-configs/ScratchCgroup.h"
#include "util/Fs.h"

namespace Atoll::capability {

namespace {

constexpr const char* kMountFeature = "cgroup2.mount";
constexpr const char* kControllersFeature = "cgroup2.controllers";
constexpr const char* kPartitionFeature = "cgroup2.cpuset_partition";

constexpr const char* kUnifiedBootFix =
    "boot with systemd.unified_cgroup_hierarchy=1 (or cgroup_no_v1=all) so the controllers "
    "bind to cgroup v2";

std::set<std::string, std::less<>> words(std::string_view text) {
  std::set<std::string, std::less<>> out;
  std::istringstream in{std::string(text)};
  std::string word;
  while (in >> word) out.insert(word);
  return out;
}

std::string joined(const std::set<std::string, std::less<>>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : " ") + item;
  return out;
}

}  // namespace

Result<Cgroup2Location> locateCgroup2(const std::string& mountInfoPath) {
  auto text = readFile(mountInfoPath);
  if (!text) return text.error();
  auto mounts = parseMountInfo(*text, mountInfoPath);
  if (!mounts) return mounts.error();
  auto mount = findCgroup2Mount(*mounts);
  if (!mount)
    return Error::invalid("find cgroup2 mount", mountInfoPath, {}, "no cgroup2 filesystem mounted");
  return Cgroup2Location{mount->mountPoint, hasCgroup1Mounts(*mounts)};
}

Feature assessCgroup2Mount(const Result<Cgroup2Location>& location) {
  if (!location)
    return Feature::absent(kMountFeature, true, location.error().message(),
                           "CONFIG_CGROUPS=y; mount cgroup2 (mount -t cgroup2 none /sys/fs/cgroup) "
                           "or boot with systemd.unified_cgroup_hierarchy=1");
  std::string detail = "cgroup2 at " + location->path;
  if (location->hybrid) detail += " (hybrid layout: cgroup v1 hierarchies mounted as well)";
  return Feature::ok(kMountFeature, true, detail);
}

Feature assessControllers(std::string_view controllersText, std::string_view subtreeControlText,
                          const Cgroup2Location& location) {
  auto available = words(controllersText);
  auto enabled = words(subtreeControlText);
  std::string missing;
  std::string options;
  for (const auto& needed : kNeededControllers) {
    if (available.contains(needed.name)) continue;
    missing += (missing.empty() ? "" : " ") + std::string(needed.name);
    options += (options.empty() ? "" : ", ") + std::string(needed.configOption);
  }
  std::string where = location.path + "/" + std::string(kControllersFile);
  std::string offered = available.empty() ? "none" : joined(available);
  if (missing.empty())
    return Feature::ok(
        kControllersFeature, true,
        "available at " + location.path + ": " + offered +
            "; enabled for children: " + (enabled.empty() ? "none" : joined(enabled)));
  std::string fix = options + " in the kernel";
  if (location.hybrid) fix = std::string(kUnifiedBootFix) + "; " + fix;
  return Feature::absent(kControllersFeature, true,
                         where + " offers " + offered + "; missing " + missing, fix);
}

Feature probeControllers(const Result<Cgroup2Location>& location) {
  if (!location)
    return Feature::absent(kControllersFeature, true, "no cgroup2 mount", kUnifiedBootFix);
  auto root = Dir::open(location->path);
  if (!root)
    return Feature::absent(kControllersFeature, true, root.error().message(), kUnifiedBootFix);
  auto controllers = root->readFile(kControllersFile);
  if (!controllers)
    return Feature::absent(kControllersFeature, true, controllers.error().message(),
                           kUnifiedBootFix);
  // The root of a hierarchy always has cgroup.subtree_control; a missing
  // one only hides which controllers are enabled.
  auto subtree = root->readFile(kSubtreeControlFile);
  return assessControllers(*controllers, subtree ? *subtree : std::string(), *location);
}

Feature probeCpusetPartition(const Result<Cgroup2Location>& location) {
  if (!location)
    return Feature::absent(kPartitionFeature, false, "no cgroup2 mount", kUnifiedBootFix);
  auto root = Dir::open(location->path);
  if (!root)
    return Feature::absent(kPartitionFeature, false, root.error().message(), kUnifiedBootFix);
  auto available = root->readFile(kControllersFile);
  auto enabled = root->readFile(kSubtreeControlFile);
  if (!available || !words(*available).contains("cpuset"))
    return Feature::absent(kPartitionFeature, false,
                           "cpuset controller not available on cgroup2 at " + location->path,
                           std::string(kUnifiedBootFix) + "; CONFIG_CPUSETS=y");
  if (!enabled || !words(*enabled).contains("cpuset"))
    return Feature::degraded(
        kPartitionFeature, false,
        "cpuset is available but not enabled in " + location->path + "/" +
            std::string(kSubtreeControlFile) +
            ", so partitions could not be checked (atoll check changes no cgroup it did not "
            "create)",
        "echo +cpuset > " + location->path + "/" + std::string(kSubtreeControlFile));
  auto scratch = ScratchCgroup::create(location->path);
  if (!scratch)
    return Feature::degraded(kPartitionFeature, false, scratch.error().message(),
                             "run atoll check as root");
  auto partition = scratch->dir().readFile(kCpusetPartitionFile);
  std::string childPath = scratch->path();
  auto removed = scratch->remove();
  if (!partition)
    return Feature::absent(kPartitionFeature, false,
                           "no " + std::string(kCpusetPartitionFile) +
                               " in a child with cpuset: " + partition.error().message(),
                           "a kernel with cgroup v2 cpuset partitions (Linux 5.11 or later)");
  std::string detail = std::string(kCpusetPartitionFile) + " present in a scratch child (" +
                       std::string(trim(*partition)) + ")";
  if (!removed) detail += "; removing " + childPath + " failed: " + removed.error().message();
  return Feature::ok(kPartitionFeature, false, detail);
}

}  // namespace Atoll::capability
