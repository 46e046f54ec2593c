#pragma once
// Loader and map reader of sched_telemetry.bpf.c: per-cgroup on-CPU time,
// context switches, run-queue latency, cross-island wait and user page
// faults, summed over CPUs on read. Only cgroups passed to monitor() are
// measured: the programs skip every other task before touching a map, which
// is what keeps their per-event cost near an empty program's.
#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "bpf/collector/Log2Histogram.h"
#include "util/Result.h"
#include "util/UniqueFd.h"

struct sched_telemetry;
struct sched_cgroup_stats;

namespace Atoll::telemetry {

struct SchedCounters {
  uint64_t oncpuNs = 0;
  uint64_t switches = 0;
  uint64_t runqWaitNs = 0;
  uint64_t runqWaits = 0;
  uint64_t crossIslandWaitNs = 0;
  uint64_t pageFaults = 0;
  Log2Histogram runqHistogram{};  // in histogramUnitNs units

  SchedCounters& operator+=(const SchedCounters& other);
};

// Sums the per-CPU copies of one map value.
SchedCounters sumPerCpu(std::span<const sched_cgroup_stats> perCpu);

struct SchedTelemetryOptions {
  uint32_t maxCgroups = 10240;  // at most maxMonitoredCgroups()
  uint64_t histogramUnitNs = 1000;
  // Keep per-CPU island clocks so the wait behind other islands' tasks is
  // exact (adds work to every context switch; off unless islands are used).
  bool trackIslands = false;
  // Count user page faults (tp_btf/page_fault_user) where the kernel has it.
  bool pageFaults = true;
  // Also load and attach the empty sched_switch program (cost baseline).
  bool withEmptyBaseline = false;
  // Mark monitored cgroups with cgroup local storage where the kernel has it
  // (Linux 6.2), else with the program's own table of cgroup ids.
  bool cgroupStorage = true;
  // The cgroup2 mount, to open monitored cgroups by id for their local
  // storage (empty: /sys/fs/cgroup on a unified host, else
  // /sys/fs/cgroup/unified).
  std::string cgroupMount;
};

struct SchedErrors {
  uint64_t mapFull = 0;      // cgroups refused by monitor() for want of room
  uint64_t taskStorage = 0;  // events lost for want of per-task storage
};

// The capacity limit of the monitored-cgroup table.
uint32_t maxMonitoredCgroups();

class SchedTelemetry {
 public:
  // Opens, loads and attaches; an error names the failing step (BTF
  // missing, verifier rejection, attach point missing).
  static Result<std::unique_ptr<SchedTelemetry>> start(const SchedTelemetryOptions& options);
  ~SchedTelemetry();
  SchedTelemetry(const SchedTelemetry&) = delete;
  SchedTelemetry& operator=(const SchedTelemetry&) = delete;

  // Starts measuring a cgroup (its counters start at zero); monitoring one
  // already monitored is a no-op. Fails, and counts in errors().mapFull,
  // when maxCgroups are monitored already.
  Result<void> monitor(uint64_t cgroupId);
  bool monitored(uint64_t cgroupId) const { return tableIndex_.count(cgroupId) != 0; }
  size_t monitoredCount() const { return tableIndex_.size(); }
  // Stops measuring a cgroup (vanished, or no longer a workload).
  void forget(uint64_t cgroupId);
  // Island membership for the cross-island wait (trackIslands); monitors
  // the cgroup if it is not yet.
  Result<void> setIsland(uint64_t cgroupId, uint32_t island);

  // Cumulative counters of every monitored cgroup since monitor().
  Result<std::unordered_map<uint64_t, SchedCounters>> read() const;
  Result<SchedErrors> errors() const;

  uint64_t histogramUnitNs() const { return histogramUnitNs_; }
  // Empty when page faults are counted, else why not.
  const std::string& pageFaultsUnavailable() const { return pageFaultsUnavailable_; }
  // Whether monitored cgroups are marked by cgroup local storage.
  bool usesCgroupStorage() const { return mountFd_.valid(); }
  // Detaches and attaches the empty baseline program again, which moves it
  // after the scheduler program in the tracepoint's call order (benchmark).
  Result<void> reattachEmptyBaseline();
  // Program descriptors for the kernel's per-program statistics.
  int schedSwitchProgFd() const;
  int wakeupProgFd() const;     // -1 unless trackIslands
  int wakeupNewProgFd() const;  // -1 unless trackIslands
  int pageFaultProgFd() const;  // -1 when not loaded
  int emptyProgFd() const;      // -1 unless withEmptyBaseline

 private:
  SchedTelemetry(sched_telemetry* skel, uint64_t unitNs, uint32_t maxCgroups);
  Result<uint32_t> takeSlot(uint64_t cgroupId);
  void releaseSlot(uint32_t slot);
  Result<UniqueFd> openCgroup(uint64_t cgroupId) const;
  // Writes the cgroup's local-storage mark (cgroup storage mode).
  Result<void> writeStorageEntry(uint64_t cgroupId, uint32_t slot, uint32_t island);
  sched_telemetry* skel_;
  uint64_t histogramUnitNs_;
  uint32_t maxCgroups_;
  std::string pageFaultsUnavailable_;
  UniqueFd mountFd_;  // the cgroup2 mount, valid in cgroup storage mode
  std::unordered_map<uint64_t, uint32_t> tableIndex_;  // cgroup id -> table entry
  std::vector<uint64_t> slotOwner_;                    // slot -> cgroup id, 0 = free
  std::vector<uint16_t> homeUsers_;  // monitored ids per home (monitored_homes bits)
  std::vector<uint32_t> freeSlots_;  // below slotsInUse_, reused first
  uint32_t slotsInUse_ = 0;          // high-water mark of slots
  uint64_t refused_ = 0;
};

}  // namespace Atoll::telemetry
