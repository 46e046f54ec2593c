#include "bpf/loaders/SchedTelemetry.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/types.h>

#include <cerrno>

#include "bpf/loaders/PerCpuMap.h"
#include "sched_telemetry.h"
#include "sched_telemetry.skel.h"

namespace Atoll::telemetry {

static_assert(SCHED_TELEMETRY_HIST_SLOTS == kHistogramSlots);

SchedCounters& SchedCounters::operator+=(const SchedCounters& other) {
  oncpuNs += other.oncpuNs;
  switches += other.switches;
  runqWaitNs += other.runqWaitNs;
  runqWaits += other.runqWaits;
  crossIslandWaitNs += other.crossIslandWaitNs;
  for (int i = 0; i < kHistogramSlots; ++i) runqHistogram[i] += other.runqHistogram[i];
  return *this;
}

SchedCounters sumPerCpu(std::span<const sched_cgroup_stats> perCpu) {
  SchedCounters total;
  for (const sched_cgroup_stats& cpu : perCpu) {
    total.oncpuNs += cpu.oncpu_ns;
    total.switches += cpu.switches;
    total.runqWaitNs += cpu.runq_wait_ns;
    total.runqWaits += cpu.runq_waits;
    total.crossIslandWaitNs += cpu.cross_island_wait_ns;
    for (int i = 0; i < kHistogramSlots; ++i) total.runqHistogram[i] += cpu.runq_hist[i];
  }
  return total;
}

Result<std::unique_ptr<SchedTelemetry>> SchedTelemetry::start(
    const SchedTelemetryOptions& options) {
  if (options.histogramUnitNs == 0)
    return Error::invalid("configure", "sched_telemetry", "0", "histogram unit must be > 0 ns");
  sched_telemetry* skel = sched_telemetry__open();
  if (!skel) return Error::fromErrno("bpf open", "sched_telemetry", errno);
  std::unique_ptr<SchedTelemetry> self(new SchedTelemetry(skel, options.histogramUnitNs));
  skel->rodata->histogram_unit_ns = options.histogramUnitNs;
  skel->rodata->track_islands = options.trackIslands ? 1 : 0;
  bpf_program__set_autoload(skel->progs.empty_sched_switch, options.withEmptyBaseline);
  if (int rc = bpf_map__set_max_entries(skel->maps.cgroup_stats, options.maxCgroups); rc < 0)
    return Error::fromErrno("bpf_map__set_max_entries", "sched_telemetry/cgroup_stats", -rc,
                            std::to_string(options.maxCgroups));
  if (int rc = sched_telemetry__load(skel); rc < 0)
    return Error::fromErrno("bpf load (verifier or BTF)", "sched_telemetry", -rc);
  if (int rc = sched_telemetry__attach(skel); rc < 0)
    return Error::fromErrno("bpf attach tp_btf/sched_switch,sched_wakeup,sched_wakeup_new",
                            "sched_telemetry", -rc);
  return self;
}

SchedTelemetry::~SchedTelemetry() {
  sched_telemetry__destroy(skel_);
}

Result<std::unordered_map<uint64_t, SchedCounters>> SchedTelemetry::read() const {
  return readPerCpuHash<sched_cgroup_stats, SchedCounters>(
      bpf_map__fd(skel_->maps.cgroup_stats), "sched_telemetry/cgroup_stats",
      [](std::span<const sched_cgroup_stats> perCpu) { return sumPerCpu(perCpu); });
}

Result<SchedErrors> SchedTelemetry::errors() const {
  int fd = bpf_map__fd(skel_->maps.sched_errors);
  auto full = readPerCpuCounter(fd, SCHED_ERROR_MAP_FULL, "sched_telemetry/sched_errors");
  if (!full) return full.error();
  auto storage = readPerCpuCounter(fd, SCHED_ERROR_TASK_STORAGE, "sched_telemetry/sched_errors");
  if (!storage) return storage.error();
  return SchedErrors{*full, *storage};
}

void SchedTelemetry::forget(uint64_t cgroupId) const {
  bpf_map_delete_elem(bpf_map__fd(skel_->maps.cgroup_stats), &cgroupId);
  bpf_map_delete_elem(bpf_map__fd(skel_->maps.cgroup_island), &cgroupId);
}

Result<void> SchedTelemetry::setIsland(uint64_t cgroupId, uint32_t island) const {
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.cgroup_island), &cgroupId, &island, BPF_ANY))
    return Error::fromErrno("bpf_map_update_elem", "sched_telemetry/cgroup_island", errno,
                            std::to_string(cgroupId));
  return ok();
}

int SchedTelemetry::schedSwitchProgFd() const {
  return bpf_program__fd(skel_->progs.sched_switch);
}
int SchedTelemetry::wakeupProgFd() const {
  return bpf_program__fd(skel_->progs.sched_wakeup);
}
int SchedTelemetry::wakeupNewProgFd() const {
  return bpf_program__fd(skel_->progs.sched_wakeup_new);
}
int SchedTelemetry::emptyProgFd() const {
  return bpf_program__autoload(skel_->progs.empty_sched_switch)
             ? bpf_program__fd(skel_->progs.empty_sched_switch)
             : -1;
}

}  // namespace Atoll::telemetry
