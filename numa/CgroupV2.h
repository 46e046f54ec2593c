#pragma once
// One cgroup v2 directory and the control files islands use, by name.
// Parsing is separate from I/O so it is tested on captured text; the class
// itself reads and writes through the dirfd-relative Dir facade.
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/Fs.h"
#include "util/Result.h"

namespace Atoll::numa {

namespace cgroupfile {
inline constexpr std::string_view kControllers = "cgroup.controllers";
inline constexpr std::string_view kSubtreeControl = "cgroup.subtree_control";
inline constexpr std::string_view kProcs = "cgroup.procs";
inline constexpr std::string_view kCpusetCpus = "cpuset.cpus";
inline constexpr std::string_view kCpusetCpusEffective = "cpuset.cpus.effective";
inline constexpr std::string_view kCpusetMems = "cpuset.mems";
inline constexpr std::string_view kCpusetMemsEffective = "cpuset.mems.effective";
inline constexpr std::string_view kCpusetPartition = "cpuset.cpus.partition";
inline constexpr std::string_view kCpuWeight = "cpu.weight";
inline constexpr std::string_view kCpuMax = "cpu.max";
inline constexpr std::string_view kMemoryMin = "memory.min";
inline constexpr std::string_view kMemoryLow = "memory.low";
inline constexpr std::string_view kMemoryHigh = "memory.high";
inline constexpr std::string_view kMemoryMax = "memory.max";
inline constexpr std::string_view kIoWeight = "io.weight";
}  // namespace cgroupfile

// Words of cgroup.controllers / cgroup.subtree_control.
std::vector<std::string> parseWordList(std::string_view text);
// PIDs of cgroup.procs; `path` names the file in errors.
Result<std::vector<pid_t>> parsePidList(std::string_view text, const std::string& path);
// cpuset.cpus.partition reads "member", "root", "isolated", or
// "root invalid (reason)". Returns the reason when invalid, else empty.
std::string partitionProblem(std::string_view text);
// io.weight reads "default 100" (plus per-device lines): the default weight.
std::string ioDefaultWeight(std::string_view text);
// memory.* reads "max" or bytes.
std::optional<std::uint64_t> parseMemoryValue(std::string_view text);

class CgroupV2 {
 public:
  static Result<CgroupV2> open(const std::string& path);

  const std::string& path() const { return dir_.path(); }
  const Dir& dir() const { return dir_; }

  Result<std::string> read(std::string_view file) const;  // trimmed
  Result<void> write(std::string_view file, std::string_view value) const;
  bool has(std::string_view file) const { return dir_.exists(file); }

  Result<std::vector<std::string>> controllers() const;
  Result<std::vector<std::string>> enabledControllers() const;
  // Enables the named controllers for children (those already on are skipped).
  Result<void> enableControllers(const std::vector<std::string>& names) const;
  Result<std::vector<pid_t>> processes() const;
  // Moves a whole process (all its threads) into this cgroup.
  Result<void> moveProcess(pid_t pid) const;

 private:
  explicit CgroupV2(Dir dir) : dir_(std::move(dir)) {}
  Dir dir_;
};

}  // namespace Atoll::numa
