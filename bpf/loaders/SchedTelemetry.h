#pragma once
// Loader and map reader of sched_telemetry.bpf.c: per-cgroup on-CPU time,
// context switches and run-queue latency, summed over CPUs on read.
#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <unordered_map>

#include "bpf/collector/Log2Histogram.h"
#include "util/Result.h"

struct sched_telemetry;
struct sched_cgroup_stats;

namespace Atoll::telemetry {

struct SchedCounters {
  uint64_t oncpuNs = 0;
  uint64_t switches = 0;
  uint64_t runqWaitNs = 0;
  uint64_t runqWaits = 0;
  uint64_t crossIslandWaitNs = 0;
  Log2Histogram runqHistogram{};  // in histogramUnitNs units

  SchedCounters& operator+=(const SchedCounters& other);
};

// Sums the per-CPU copies of one map value.
SchedCounters sumPerCpu(std::span<const sched_cgroup_stats> perCpu);

struct SchedTelemetryOptions {
  uint32_t maxCgroups = 10240;
  uint64_t histogramUnitNs = 1000;
  bool trackIslands = false;
  // Also load and attach the empty sched_switch program (cost baseline).
  bool withEmptyBaseline = false;
};

struct SchedErrors {
  uint64_t mapFull = 0;      // events lost because the cgroup map was full
  uint64_t taskStorage = 0;  // events lost for want of per-task storage
};

class SchedTelemetry {
 public:
  // Opens, loads and attaches; an error names the failing step (BTF
  // missing, verifier rejection, attach point missing).
  static Result<std::unique_ptr<SchedTelemetry>> start(const SchedTelemetryOptions& options);
  ~SchedTelemetry();
  SchedTelemetry(const SchedTelemetry&) = delete;
  SchedTelemetry& operator=(const SchedTelemetry&) = delete;

  // Cumulative counters of every cgroup seen since start.
  Result<std::unordered_map<uint64_t, SchedCounters>> read() const;
  Result<SchedErrors> errors() const;
  // Drops a vanished cgroup's entry so the map does not fill with the dead.
  void forget(uint64_t cgroupId) const;
  // Island membership for the cross-island wait (trackIslands).
  Result<void> setIsland(uint64_t cgroupId, uint32_t island) const;

  uint64_t histogramUnitNs() const { return histogramUnitNs_; }
  // Program descriptors for the kernel's per-program statistics.
  int schedSwitchProgFd() const;
  int wakeupProgFd() const;
  int wakeupNewProgFd() const;
  int emptyProgFd() const;  // -1 unless withEmptyBaseline

 private:
  SchedTelemetry(sched_telemetry* skel, uint64_t unitNs) : skel_(skel), histogramUnitNs_(unitNs) {}
  sched_telemetry* skel_;
  uint64_t histogramUnitNs_;
};

}  // namespace Atoll::telemetry
