#pragma once
// The fields of /proc/<pid>/stat the daemon reports about itself. Parsing is
// separate from reading so it is tested on fixture lines, including process
// names with spaces and parentheses.
#include <cstdint>
#include <string_view>

#include "util/Result.h"

namespace Atoll {

struct ProcStat {
  uint64_t userTicks = 0;      // utime, field 14, in clock ticks
  uint64_t systemTicks = 0;    // stime, field 15
  uint64_t threads = 0;        // num_threads, field 20
  uint64_t residentPages = 0;  // rss, field 24
};

Result<ProcStat> parseProcStat(std::string_view line);

}  // namespace Atoll
