#include "numa/IslandSelector.h"

#include <fnmatch.h>

#include <algorithm>
#include <cerrno>

#include "numa/CgroupV2.h"
#include "util/Fs.h"

namespace Atoll::numa {

namespace {

constexpr std::string_view kCgroupPrefix = "cgroup:";
constexpr std::string_view kDomainPrefix = "vm:";
constexpr std::string_view kMetadataPrefix = "vm-metadata:";

Error badSelector(std::string_view text, std::string detail) {
  return Error::invalid("parse selector", "--select", std::string(text), std::move(detail));
}

std::size_t componentsOf(std::string_view path) {
  return std::size_t(std::count(path.begin(), path.end(), '/')) + 1;
}

bool insideManagedRoot(const std::string& path, const std::string& managedRoot) {
  return path == managedRoot ||
         (path.size() > managedRoot.size() &&
          path.compare(0, managedRoot.size(), managedRoot) == 0 && path[managedRoot.size()] == '/');
}

// Collects cgroups down to `depth` path components below `relative`.
Result<void> walk(const Dir& mount, const std::string& relative, std::size_t depth,
                  std::vector<std::string>& out) {
  auto dir = relative.empty() ? Dir::open(mount.path()) : mount.openChild(relative);
  if (!dir) return dir.error();
  auto entries = dir->list();
  if (!entries) return entries.error();
  for (const auto& name : *entries) {
    if (!dir->exists(name + "/" + std::string(cgroupfile::kProcs))) continue;
    std::string child = relative.empty() ? name : relative + "/" + name;
    out.push_back(child);
    if (depth > 1) {
      if (auto deeper = walk(mount, child, depth - 1, out); !deeper) return deeper;
    }
  }
  return ok();
}

// Processes of a cgroup and of every cgroup below it.
Result<void> collectProcesses(const std::string& mount, const std::string& relative,
                              std::vector<SelectedProcess>& out) {
  auto group = CgroupV2::open(mount + "/" + relative);
  if (!group) return group.error();
  auto pids = group->processes();
  if (!pids) return pids.error();
  for (pid_t pid : *pids) out.push_back({pid, relative});
  auto entries = group->dir().list();
  if (!entries) return entries.error();
  std::sort(entries->begin(), entries->end());
  for (const auto& name : *entries) {
    if (!group->dir().exists(name + "/" + std::string(cgroupfile::kProcs))) continue;
    if (auto below = collectProcesses(mount, relative + "/" + name, out); !below) return below;
  }
  return ok();
}

}  // namespace

Result<IslandSelector> parseIslandSelector(std::string_view text) {
  IslandSelector selector;
  selector.text = std::string(text);
  std::string_view rest = text;
  if (rest.substr(0, kMetadataPrefix.size()) == kMetadataPrefix) {
    selector.kind = SelectorKind::DomainMetadata;
    rest.remove_prefix(kMetadataPrefix.size());
    if (std::size_t equals = rest.rfind('='); equals != std::string_view::npos) {
      selector.metadataText = std::string(rest.substr(equals + 1));
      rest = rest.substr(0, equals);
    }
    if (rest.empty()) return badSelector(text, "vm-metadata: needs a namespace URI");
  } else if (rest.substr(0, kDomainPrefix.size()) == kDomainPrefix) {
    selector.kind = SelectorKind::DomainName;
    rest.remove_prefix(kDomainPrefix.size());
    if (rest.empty()) return badSelector(text, "vm: needs a domain name pattern");
  } else {
    if (rest.substr(0, kCgroupPrefix.size()) == kCgroupPrefix)
      rest.remove_prefix(kCgroupPrefix.size());
    while (!rest.empty() && rest.front() == '/') rest.remove_prefix(1);
    while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
    if (rest.empty()) return badSelector(text, "a cgroup glob needs a path (e.g. machine.slice/*)");
    for (std::string_view part = rest; !part.empty();) {
      std::string_view component = part.substr(0, part.find('/'));
      if (component == ".." || component == "." || component.empty())
        return badSelector(text,
                           "a cgroup glob is a path below the cgroup2 mount, without "
                           "'.', '..' or empty components");
      part.remove_prefix(std::min(part.size(), component.size() + 1));
    }
  }
  selector.pattern = std::string(rest);
  return selector;
}

Result<std::vector<std::string>> matchCgroups(const std::string& mount, const std::string& glob,
                                              const std::string& managedRoot) {
  auto root = Dir::open(mount);
  if (!root) return root.error();
  std::vector<std::string> all;
  if (auto walked = walk(*root, "", componentsOf(glob), all); !walked) return walked.error();
  std::vector<std::string> matched;
  for (const auto& path : all) {
    if (insideManagedRoot(path, managedRoot)) continue;
    if (::fnmatch(glob.c_str(), path.c_str(), FNM_PATHNAME) == 0) matched.push_back(path);
  }
  std::sort(matched.begin(), matched.end());
  return matched;
}

Result<std::vector<std::string>> matchDomains(const VmPinner& pinner,
                                              const IslandSelector& selector) {
  auto running = pinner.runningDomains();
  if (!running) return running.error();
  std::vector<std::string> matched;
  for (const auto& domain : *running) {
    if (selector.kind == SelectorKind::DomainName) {
      if (::fnmatch(selector.pattern.c_str(), domain.c_str(), 0) == 0) matched.push_back(domain);
      continue;
    }
    auto text = pinner.metadata(domain, selector.pattern);
    if (!text) return text.error();
    if (*text && (!selector.metadataText || **text == *selector.metadataText))
      matched.push_back(domain);
  }
  std::sort(matched.begin(), matched.end());
  return matched;
}

Result<SelectedMembers> resolveSelectors(const std::vector<IslandSelector>& selectors,
                                         const std::string& mount, const std::string& managedRoot,
                                         const VmPinner* pinner) {
  SelectedMembers members;
  for (const auto& selector : selectors) {
    if (selector.needsLibvirt()) {
      if (pinner == nullptr)
        return Error::invalid("select", "--select", selector.text,
                              "this selector needs libvirt, which is not connected");
      auto domains = matchDomains(*pinner, selector);
      if (!domains) return domains.error();
      if (domains->empty())
        return Error::invalid("select", "--select", selector.text,
                              "no running libvirt domain matches selector '" + selector.text + "'");
      for (auto& domain : *domains) {
        if (std::find(members.domains.begin(), members.domains.end(), domain) ==
            members.domains.end())
          members.domains.push_back(std::move(domain));
      }
      continue;
    }
    auto cgroups = matchCgroups(mount, selector.pattern, managedRoot);
    if (!cgroups) return cgroups.error();
    if (cgroups->empty())
      return Error::invalid(
          "select", mount + "/" + selector.pattern, selector.text,
          "no cgroup below " + mount + " matches selector '" + selector.text + "'");
    for (const auto& cgroup : *cgroups) {
      std::vector<SelectedProcess> found;
      if (auto collected = collectProcesses(mount, cgroup, found); !collected)
        return collected.error();
      for (auto& process : found) {
        bool seen = std::any_of(members.processes.begin(), members.processes.end(),
                                [&](const SelectedProcess& p) { return p.pid == process.pid; });
        if (!seen) members.processes.push_back(std::move(process));
      }
    }
  }
  return members;
}

Result<void> moveProcessesBack(const std::string& mount,
                               const std::vector<SelectedProcess>& processes) {
  Result<void> first;
  for (auto it = processes.rbegin(); it != processes.rend(); ++it) {
    auto home = CgroupV2::open(mount + "/" + it->cgroup);
    Result<void> back = home ? home->moveProcess(it->pid) : Result<void>(home.error());
    if (!back && back.error().errnum != ESRCH && first) first = back;
  }
  return first;
}

Result<void> moveSelectedProcesses(const std::string& mount, const std::string& islandPath,
                                   const std::vector<SelectedProcess>& processes) {
  auto island = CgroupV2::open(islandPath);
  if (!island) return island.error();
  std::vector<SelectedProcess> moved;
  for (const auto& process : processes) {
    auto done = island->moveProcess(process.pid);
    if (done) {
      moved.push_back(process);
      continue;
    }
    if (done.error().errnum == ESRCH) continue;
    Error error = done.error();
    if (auto back = moveProcessesBack(mount, moved); !back)
      error.detail += (error.detail.empty() ? "" : "; ") + back.error().message();
    else if (!moved.empty())
      error.detail += (error.detail.empty() ? "" : "; ") +
                      std::string("processes moved before it were moved back");
    return error;
  }
  return ok();
}

}  // namespace Atoll::numa
