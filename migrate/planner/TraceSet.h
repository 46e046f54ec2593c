#pragma once
// VM resource traces for the replay, on one 5-minute grid: CPU demand in
// cores and resident memory per VM per step. Two layouts are read:
//   PlanetLab "wide": CSVs (optionally gzip) with the header
//     `step_5min,<vm>,<vm>,...` and one row per step of CPU % of one core;
//     files in date order are consecutive days. VM names are not stable
//     across PlanetLab days, so column k (in file order) of every day is VM
//     slot k: a host whose tenants change at midnight; slots present on
//     every day are kept.
//   Bitbrains (GWA-T-12): one CSV per VM (`<id>.csv[.gz]`, in month folders;
//     the same id in several folders is one VM), `;\t`-separated, with UNIX
//     seconds, CPU cores, provisioned MHz, used MHz, ..., memory used KB.
//     Samples are averaged into 5-minute bins on a common grid; a bin
//     without samples repeats the VM's last value (0 before its first).
// Parsing is separate from file access; errors name the file, line and value.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/Result.h"

namespace Atoll::planner {

inline constexpr int64_t kTraceStepSeconds = 300;

struct TraceVm {
  std::string name;
  std::vector<float> cpuCores;     // per step
  std::vector<float> memoryBytes;  // per step; empty when the trace has none
};

struct TraceSet {
  std::string source;  // "planetlab" or "bitbrains"
  size_t steps = 0;
  std::vector<TraceVm> vms;
};

// One wide table (one PlanetLab day): VM columns in file order.
struct WideTable {
  std::vector<std::string> names;
  std::vector<std::vector<float>> cpuCores;  // [vm][step]
};
Result<WideTable> parseWideCsv(std::string_view content, const std::string& label);

// One Bitbrains VM file: raw samples, not yet binned.
struct BitbrainsSamples {
  std::vector<int64_t> seconds;
  std::vector<float> cpuCores;
  std::vector<float> memoryBytes;
};
Result<BitbrainsSamples> parseBitbrainsCsv(std::string_view content, const std::string& label);

// Joins days of wide tables into VM slots (see above).
TraceSet joinWideDays(const std::vector<WideTable>& days);
// Bins the VMs' samples onto one grid from the earliest sample.
TraceSet binBitbrains(const std::vector<std::string>& names,
                      const std::vector<BitbrainsSamples>& vms);

// Reads a whole file, gunzipping when it is gzip (plain files pass through).
Result<std::string> readMaybeGzip(const std::string& path);
// Reads a trace directory in either layout (detected from the headers).
// maxSteps > 0 keeps the first maxSteps steps.
Result<TraceSet> readTraceDir(const std::string& dir, size_t maxSteps = 0);

}  // namespace Atoll::planner
