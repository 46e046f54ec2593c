#include "bpf/collector/IslandNumbering.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <set>

namespace Atoll::telemetry {

std::vector<std::string> IslandNumbering::update(const std::vector<std::string>& islandNames) {
  const std::set<std::string> present(islandNames.begin(), islandNames.end());
  std::erase_if(numbers_, [&](const auto& entry) { return present.count(entry.first) == 0; });
  std::set<uint32_t> used;
  for (const auto& [name, number] : numbers_) used.insert(number);
  std::vector<std::string> unnumbered;
  for (const std::string& name : present) {
    if (numbers_.count(name)) continue;
    if (used.size() >= kMaxIslands) {
      unnumbered.push_back(name);
      continue;
    }
    // Round robin from the last number given: a number just freed is not
    // handed to a new island while the old one's waits may be in flight.
    uint32_t number = lastGiven_;
    do number = number % kMaxIslands + 1;
    while (used.count(number));
    numbers_.emplace(name, number);
    used.insert(number);
    lastGiven_ = number;
  }
  return unnumbered;
}

uint32_t IslandNumbering::islandOf(std::string_view cgroupPath) const {
  const std::string_view root = managedRoot_;
  if (cgroupPath.size() <= root.size() + 1 || cgroupPath.substr(0, root.size()) != root ||
      cgroupPath[root.size()] != '/')
    return 0;
  std::string_view rest = cgroupPath.substr(root.size() + 1);
  std::string_view island = rest.substr(0, rest.find('/'));
  auto it = numbers_.find(std::string(island));
  return it == numbers_.end() ? 0 : it->second;
}

Result<std::vector<std::string>> listIslandCgroups(const Dir& mount,
                                                   const std::string& managedRoot) {
  std::vector<std::string> islands;
  if (!mount.exists(managedRoot)) return islands;
  auto root = mount.openChild(managedRoot);
  if (!root) {
    // Removed between the two calls: no islands.
    if (root.error().errnum == ENOENT) return islands;
    return root.error();
  }
  auto entries = root->list();
  if (!entries) return entries.error();
  for (const std::string& name : *entries) {
    struct stat st {};
    if (::fstatat(root->fd(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode))
      islands.push_back(name);
  }
  std::sort(islands.begin(), islands.end());
  return islands;
}

}  // namespace Atoll::telemetry
