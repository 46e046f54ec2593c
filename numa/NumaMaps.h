#pragma once
// /proc/PID/numa_maps, parsed: for each mapping, its start address, its
// memory policy and how many of its pages sit on each NUMA node: where the
// kernel really placed a process's memory (islands report page moves with it).
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "util/Result.h"

namespace Atoll {

struct NumaMapsEntry {
  uint64_t start = 0;
  std::string policy;                   // "default", "bind:1", "interleave:0-1", ...
  std::map<int, uint64_t> pagesOnNode;  // "N<node>=<pages>", nodes without pages absent
  uint64_t anonPages = 0;               // "anon=<pages>"
  std::string file;                     // "file=<path>", empty for anonymous memory
  uint64_t kernelPageSizeKiB = 0;       // "kernelpagesize_kB=<KiB>", the unit of the counts

  uint64_t pagesOn(int node) const {
    auto it = pagesOnNode.find(node);
    return it == pagesOnNode.end() ? 0 : it->second;
  }
};

// Parses the whole text of a numa_maps file; `path` names it in errors.
Result<std::vector<NumaMapsEntry>> parseNumaMaps(std::string_view text, const std::string& path);

// The entry whose mapping starts exactly at `start`, or nullptr.
const NumaMapsEntry* findMapping(const std::vector<NumaMapsEntry>& entries, uint64_t start);

}  // namespace Atoll
