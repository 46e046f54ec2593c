#pragma once
// Reads one cgroup's control files on descriptors opened once and re-read
// with a single pread each into a reused buffer (no per-read allocation; a
// path string is built only for an error message). A file the kernel does not offer (no memory
// controller on this hierarchy, no PSI) is simply absent from the reading;
// a cgroup removed under us fails with ENODEV, which tells the collector its
// workload has ended even if a new cgroup took the same path.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "bpf/collector/CgroupStatParser.h"
#include "util/Fs.h"

namespace Atoll::telemetry {

inline constexpr std::string_view kCpuStatFile = "cpu.stat";
inline constexpr std::string_view kMemoryCurrentFile = "memory.current";
inline constexpr std::string_view kMemoryStatFile = "memory.stat";
inline constexpr std::string_view kCpuPressureFile = "cpu.pressure";
inline constexpr std::string_view kMemoryPressureFile = "memory.pressure";
inline constexpr std::string_view kIoPressureFile = "io.pressure";

struct CgroupReading {
  std::optional<CpuStat> cpu;
  std::optional<uint64_t> memoryCurrent;
  std::map<std::string, uint64_t, std::less<>> memoryStat;  // empty when absent
  std::optional<Pressure> cpuPressure;
  std::optional<Pressure> memoryPressure;
  std::optional<Pressure> ioPressure;
};

class CgroupReader {
 public:
  // Opens the files of `cgroup` that exist; readMemoryStat=false skips the
  // largest file when only resident memory is wanted.
  static Result<CgroupReader> open(const Dir& cgroup, bool readMemoryStat = true);

  // withSlowSignals=false reads only cpu.stat and memory.current: memory.stat
  // and PSI (itself a 10 s average the kernel updates every 2 s) can be read
  // less often than every tick.
  // withCpuStat=false skips cpu.stat (when CPU time comes from elsewhere).
  Result<CgroupReading> read(bool withSlowSignals = true, bool withCpuStat = true) const;
  bool hasMemoryStat() const { return memoryStat_.valid(); }
  // Only cpu.stat (the benchmark's reference and the accuracy tests).
  Result<CpuStat> readCpuStat() const;
  const std::string& path() const { return path_; }

 private:
  CgroupReader() = default;
  Result<std::string_view> readText(const UniqueFd& fd, std::string_view name) const;
  std::string path_;
  UniqueFd cpuStat_;
  UniqueFd memoryCurrent_;
  UniqueFd memoryStat_;
  UniqueFd cpuPressure_;
  UniqueFd memoryPressure_;
  UniqueFd ioPressure_;
};

}  // namespace Atoll::telemetry
