#include "bpf/collector/CgroupDiscovery.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>

namespace Atoll::telemetry {

Result<uint64_t> cgroupIdOf(const Dir& cgroup) {
  struct stat st {};
  if (::fstat(cgroup.fd(), &st) != 0) return Error::fromErrno("fstat", cgroup.path(), errno);
  return static_cast<uint64_t>(st.st_ino);
}

namespace {

bool isDirectory(const Dir& parent, const std::string& name) {
  struct stat st {};
  return ::fstatat(parent.fd(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
}

// Collects the ids of dir and all its descendants; vanished children skipped.
void collectSubtree(const Dir& dir, int depthLeft, std::vector<uint64_t>& ids) {
  if (auto id = cgroupIdOf(dir)) ids.push_back(*id);
  if (depthLeft <= 0) return;
  auto entries = dir.list();
  if (!entries) return;
  for (const std::string& name : *entries) {
    if (!isDirectory(dir, name)) continue;
    auto child = dir.openChild(name);
    if (child) collectSubtree(*child, depthLeft - 1, ids);
  }
}

void walk(const Dir& dir, const std::string& relative, int depth, const DiscoveryOptions& options,
          std::vector<WorkloadCgroup>& out) {
  if (!relative.empty() && anySelectorMatches(options.selectors, relative)) {
    WorkloadCgroup found;
    found.cgroup.path = relative;
    found.cgroup.name = relative;
    collectSubtree(dir, options.maxDepth, found.subtreeIds);
    if (found.subtreeIds.empty()) return;  // vanished while we looked
    found.cgroup.cgroupId = found.subtreeIds.front();
    out.push_back(std::move(found));
    return;
  }
  if (depth >= options.maxDepth) return;
  auto entries = dir.list();
  if (!entries) return;
  for (const std::string& name : *entries) {
    if (!isDirectory(dir, name)) continue;
    auto child = dir.openChild(name);
    if (!child) continue;
    walk(*child, relative.empty() ? name : relative + "/" + name, depth + 1, options, out);
  }
}

}  // namespace

Result<std::vector<WorkloadCgroup>> discoverBySelectors(const Dir& mount,
                                                        const DiscoveryOptions& options) {
  std::vector<WorkloadCgroup> out;
  if (options.selectors.empty()) return out;
  walk(mount, "", 0, options, out);
  return out;
}

Result<WorkloadCgroup> describeCgroup(const Dir& mount, const std::string& relativePath) {
  auto dir = mount.openChild(relativePath);
  if (!dir) return dir.error();
  WorkloadCgroup found;
  found.cgroup.path = relativePath;
  found.cgroup.name = relativePath;
  collectSubtree(*dir, 6, found.subtreeIds);
  if (found.subtreeIds.empty()) return Error::fromErrno("fstat", dir->path(), ENOENT);
  found.cgroup.cgroupId = found.subtreeIds.front();
  return found;
}

}  // namespace Atoll::telemetry
