#pragma once
// A workload-family selector: which processes or VMs belong on an island.
//   cgroup:GLOB  (or a bare GLOB)  cgroup paths below the cgroup2 mount, as
//                fnmatch(3) with FNM_PATHNAME matches them: "machine.slice/*"
//   vm:GLOB                        libvirt domain names: "inference-*"
//   vm-metadata:URI[=TEXT]         libvirt domains with a <metadata> element
//                                  in namespace URI (and, with =TEXT, that
//                                  text in it); the last '=' splits URI/TEXT
// Matching only reads; a selector that matches nothing is an error naming
// it, because on an island being created it is almost always a typo (an
// island for a family with no members yet is created without --select and
// filled later with `pin`). Cgroups under the managed root never match.
#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "numa/VmPinner.h"
#include "util/Result.h"

namespace Atoll::numa {

enum class SelectorKind { CgroupGlob, DomainName, DomainMetadata };

struct IslandSelector {
  SelectorKind kind = SelectorKind::CgroupGlob;
  std::string pattern;  // the glob, or the metadata namespace URI
  std::optional<std::string> metadataText;
  std::string text;  // as written, for messages

  bool needsLibvirt() const { return kind != SelectorKind::CgroupGlob; }
};

Result<IslandSelector> parseIslandSelector(std::string_view text);

// A process a cgroup selector matched, with the cgroup it was in (relative
// to the mount) so a failed change can put it back.
struct SelectedProcess {
  pid_t pid = 0;
  std::string cgroup;
};

struct SelectedMembers {
  std::vector<SelectedProcess> processes;
  std::vector<std::string> domains;
};

// Cgroups (relative paths, sorted) matching `glob`, outside `managedRoot`.
Result<std::vector<std::string>> matchCgroups(const std::string& mount, const std::string& glob,
                                              const std::string& managedRoot);
// Running domains a vm: or vm-metadata: selector matches, sorted.
Result<std::vector<std::string>> matchDomains(const VmPinner& pinner,
                                              const IslandSelector& selector);

// Every selector's members; the first selector that matches nothing is an
// error. `pinner` may be null when no selector needs libvirt.
Result<SelectedMembers> resolveSelectors(const std::vector<IslandSelector>& selectors,
                                         const std::string& mount, const std::string& managedRoot,
                                         const VmPinner* pinner);

// Moves the processes into the cgroup at `islandPath`; on a failure, those
// already moved go back where they were. Processes that exited are skipped.
Result<void> moveSelectedProcesses(const std::string& mount, const std::string& islandPath,
                                   const std::vector<SelectedProcess>& processes);
// Puts processes back into the cgroups they were selected from (undoing
// moveSelectedProcesses); processes that exited are skipped.
Result<void> moveProcessesBack(const std::string& mount,
                               const std::vector<SelectedProcess>& processes);

}  // namespace Atoll::numa
