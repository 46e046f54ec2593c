#pragma once
// Parsers for cgroup v2 control file text (cpu.stat, memory.stat,
// memory.current, *.pressure). Pure functions over text: the readers that
// keep descriptors do the I/O, so these are tested on fixture text.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "util/Result.h"

namespace Atoll::telemetry {

struct CpuStat {
  uint64_t usageUsec = 0;
  uint64_t userUsec = 0;
  uint64_t systemUsec = 0;
};

// One line of a PSI file ("some avg10=0.00 avg60=0.00 avg300=0.00 total=0").
struct PressureLine {
  double avg10 = 0;
  double avg60 = 0;
  double avg300 = 0;
  uint64_t totalUsec = 0;
};

struct Pressure {
  PressureLine some;
  std::optional<PressureLine> full;  // cpu.pressure lacks it on older kernels
};

// `source` names the file in error messages.
Result<CpuStat> parseCpuStat(std::string_view text, const std::string& source);
// Flat "key value" files (memory.stat): every key with its value.
Result<std::map<std::string, uint64_t, std::less<>>> parseKeyValues(std::string_view text,
                                                                    const std::string& source);
// A single number ("max" is not accepted: memory.current is always a number).
Result<uint64_t> parseSingleValue(std::string_view text, const std::string& source);
Result<Pressure> parsePressure(std::string_view text, const std::string& source);

}  // namespace Atoll::telemetry
