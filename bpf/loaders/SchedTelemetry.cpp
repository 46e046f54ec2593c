#include "bpf/loaders/SchedTelemetry.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/types.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <string_view>

#include "bpf/loaders/PerCpuMap.h"
#include "sched_telemetry.h"
#include "sched_telemetry.skel.h"

namespace Atoll::telemetry {

static_assert(SCHED_TELEMETRY_HIST_SLOTS == kHistogramSlots);

namespace {

constexpr const char* kStatsMapName = "sched_telemetry/cgroup_stats";
constexpr const char* kStorageMapName = "sched_telemetry/monitored_cgroups";
// The file-handle type under which kernfs (cgroupfs) exports a directory:
// the handle is the 64-bit cgroup id.
constexpr int kKernfsFileHandleType = 0xfe;

// Whether the running kernel's BTF has the tracepoint a tp_btf program
// attaches to (its btf_trace_<name> typedef).
bool kernelHasRawTracepoint(const char* name) {
  btf* vmlinux = btf__load_vmlinux_btf();
  if (!vmlinux) return false;
  std::string typedefName = std::string("btf_trace_") + name;
  bool found = btf__find_by_name_kind(vmlinux, typedefName.c_str(), BTF_KIND_TYPEDEF) > 0;
  btf__free(vmlinux);
  return found;
}

// Whether the running kernel's `structName` has a member `member` (BTF).
bool kernelStructHasMember(const char* structName, std::string_view member) {
  btf* vmlinux = btf__load_vmlinux_btf();
  if (!vmlinux) return false;
  bool found = false;
  int id = btf__find_by_name_kind(vmlinux, structName, BTF_KIND_STRUCT);
  if (const btf_type* type = id > 0 ? btf__type_by_id(vmlinux, id) : nullptr) {
    const btf_member* members = btf_members(type);
    for (int i = 0; i < btf_vlen(type) && !found; ++i) {
      const char* name = btf__name_by_offset(vmlinux, members[i].name_off);
      found = name && std::string_view(name) == member;
    }
  }
  btf__free(vmlinux);
  return found;
}

// Whether task_struct has sched_info (CONFIG_SCHED_INFO: schedstats or
// delay accounting), whose accounting the program reads.
bool kernelHasSchedInfo() {
  return kernelStructHasMember("task_struct", "sched_info");
}

// Whether the kernel has cgroup local storage (Linux 6.2 added the map type
// together with this member of struct cgroup).
bool kernelHasCgroupStorage() {
  return kernelStructHasMember("cgroup", "bpf_cgrp_storage");
}

std::string cgroup2MountOrDefault(const std::string& configured) {
  if (!configured.empty()) return configured;
  if (::access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0) return "/sys/fs/cgroup";
  return "/sys/fs/cgroup/unified";
}

}  // namespace

uint32_t maxMonitoredCgroups() {
  return SCHED_MONITOR_MAX_CGROUPS;
}

SchedCounters& SchedCounters::operator+=(const SchedCounters& other) {
  oncpuNs += other.oncpuNs;
  switches += other.switches;
  runqWaitNs += other.runqWaitNs;
  runqWaits += other.runqWaits;
  crossIslandWaitNs += other.crossIslandWaitNs;
  pageFaults += other.pageFaults;
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
    total.pageFaults += cpu.page_faults;
    for (int i = 0; i < kHistogramSlots; ++i) total.runqHistogram[i] += cpu.runq_hist[i];
  }
  return total;
}

SchedTelemetry::SchedTelemetry(sched_telemetry* skel, uint64_t unitNs, uint32_t maxCgroups)
    : skel_(skel),
      histogramUnitNs_(unitNs),
      maxCgroups_(maxCgroups),
      slotOwner_(maxCgroups, 0),
      homeUsers_(SCHED_MONITOR_TABLE_SIZE, 0) {}

Result<std::unique_ptr<SchedTelemetry>> SchedTelemetry::start(
    const SchedTelemetryOptions& options) {
  if (options.histogramUnitNs == 0)
    return Error::invalid("configure", "sched_telemetry", "0", "histogram unit must be > 0 ns");
  if (options.maxCgroups == 0 || options.maxCgroups > SCHED_MONITOR_MAX_CGROUPS)
    return Error::invalid(
        "configure", "sched_telemetry", std::to_string(options.maxCgroups),
        "monitored cgroups must be 1.." + std::to_string(SCHED_MONITOR_MAX_CGROUPS));
  if (!kernelHasSchedInfo())
    return Error::invalid("bpf load", "/sys/kernel/btf/vmlinux", "task_struct.sched_info",
                          "kernel built without CONFIG_SCHED_INFO (schedstats or delay "
                          "accounting), or without BTF: no per-task run-queue accounting to read");
  sched_telemetry* skel = sched_telemetry__open();
  if (!skel) return Error::fromErrno("bpf open", "sched_telemetry", errno);
  std::unique_ptr<SchedTelemetry> self(
      new SchedTelemetry(skel, options.histogramUnitNs, options.maxCgroups));
  skel->rodata->histogram_unit_ns = options.histogramUnitNs;
  skel->rodata->track_islands = options.trackIslands ? 1 : 0;
  bpf_program__set_autoload(skel->progs.empty_sched_switch, options.withEmptyBaseline);
  // Wakeups are hooked only to snapshot island clocks at enqueue.
  bpf_program__set_autoload(skel->progs.sched_migrate_task, options.trackIslands);
  bpf_program__set_autoload(skel->progs.sched_wakeup, options.trackIslands);
  bpf_program__set_autoload(skel->progs.sched_wakeup_new, options.trackIslands);
  if (!options.pageFaults) {
    self->pageFaultsUnavailable_ = "disabled";
  } else if (!kernelHasRawTracepoint("page_fault_user")) {
    self->pageFaultsUnavailable_ =
        "kernel has no exceptions:page_fault_user tracepoint in its BTF (x86 only)";
  }
  bpf_program__set_autoload(skel->progs.page_fault_user, self->pageFaultsUnavailable_.empty());
  if (options.cgroupStorage && kernelHasCgroupStorage()) {
    const std::string mount = cgroup2MountOrDefault(options.cgroupMount);
    // Without the mount the id table serves: same numbers, dearer misses.
    int fd = ::open(mount.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) self->mountFd_ = UniqueFd(fd);
  }
  if (self->mountFd_.valid()) {
    skel->rodata->use_cgroup_storage = 1;
  } else {
    // Without cgroup local storage the map is never used (the programs
    // take the table path); an array stands in so the object loads.
    bpf_map__set_type(skel->maps.monitored_cgroups, BPF_MAP_TYPE_ARRAY);
    bpf_map__set_map_flags(skel->maps.monitored_cgroups, 0);
    bpf_map__set_max_entries(skel->maps.monitored_cgroups, 1);
  }
  if (int rc = bpf_map__set_max_entries(skel->maps.cgroup_stats, options.maxCgroups); rc < 0)
    return Error::fromErrno("bpf_map__set_max_entries", kStatsMapName, -rc,
                            std::to_string(options.maxCgroups));
  // A row of cgroup_stats holds one copy of the counters per possible CPU,
  // laid out as a per-CPU map's value is read, so reads and resets below
  // treat it as one.
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return Error::fromErrno("libbpf_num_possible_cpus", kStatsMapName, -cpus);
  skel->rodata->stats_cpus = static_cast<uint32_t>(cpus);
  if (int rc = bpf_map__set_value_size(skel->maps.cgroup_stats,
                                       static_cast<uint32_t>(cpus) * sizeof(sched_cgroup_stats));
      rc < 0)
    return Error::fromErrno("bpf_map__set_value_size", kStatsMapName, -rc, std::to_string(cpus));
  if (int rc = sched_telemetry__load(skel); rc < 0)
    return Error::fromErrno("bpf load (verifier or BTF)", "sched_telemetry", -rc);
  if (!skel->bss)
    return Error::invalid("bpf load", "sched_telemetry/.bss", "",
                          "kernel cannot memory-map BPF global data (needs Linux 5.5)");
  if (int rc = sched_telemetry__attach(skel); rc < 0)
    return Error::fromErrno("bpf attach tp_btf/sched_switch,sched_wakeup,sched_wakeup_new",
                            "sched_telemetry", -rc);
  return self;
}

SchedTelemetry::~SchedTelemetry() {
  sched_telemetry__destroy(skel_);
}

Result<uint32_t> SchedTelemetry::takeSlot(uint64_t cgroupId) {
  if (!freeSlots_.empty()) {
    // Lowest free slot first, so reads cover as few slots as possible.
    std::pop_heap(freeSlots_.begin(), freeSlots_.end(), std::greater<>());
    uint32_t slot = freeSlots_.back();
    freeSlots_.pop_back();
    return slot;
  }
  if (slotsInUse_ < maxCgroups_) return slotsInUse_++;
  ++refused_;
  return Error::invalid("monitor", kStatsMapName, std::to_string(cgroupId),
                        "all " + std::to_string(maxCgroups_) +
                            " cgroup slots are in use (CollectorOptions::maxCgroups)");
}

Result<void> SchedTelemetry::monitor(uint64_t cgroupId) {
  if (cgroupId == SCHED_MONITOR_EMPTY || cgroupId == SCHED_MONITOR_REMOVED)
    return Error::invalid("monitor", kStatsMapName, std::to_string(cgroupId), "not a cgroup id");
  if (monitored(cgroupId)) return ok();
  sched_monitor_entry* table = skel_->bss->monitored;
  const uint32_t home = sched_monitor_home(cgroupId);
  int64_t index = -1;
  for (uint32_t i = 0; i < SCHED_MONITOR_MAX_PROBES; ++i) {
    uint32_t at = (home + i) & (SCHED_MONITOR_TABLE_SIZE - 1);
    uint64_t id = table[at].cgroup_id;
    if (id == SCHED_MONITOR_EMPTY || id == SCHED_MONITOR_REMOVED) {
      index = at;
      break;
    }
  }
  if (index < 0) {
    ++refused_;
    return Error::invalid("monitor", "sched_telemetry/monitored", std::to_string(cgroupId),
                          "no free entry within " + std::to_string(SCHED_MONITOR_MAX_PROBES) +
                              " probes of the id's home");
  }
  auto slot = takeSlot(cgroupId);
  if (!slot) return slot.error();
  // Counters start from zero: a slot may have served a forgotten cgroup.
  // Every CPU's copy names its owner, so the programs can trust a slot
  // number they cached for a task of this cgroup.
  const int cpus = libbpf_num_possible_cpus();
  std::vector<sched_cgroup_stats> zero(static_cast<size_t>(std::max(cpus, 1)));
  for (sched_cgroup_stats& cpu : zero) cpu.owner_cgroup_id = cgroupId;
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.cgroup_stats), &*slot, zero.data(), BPF_ANY)) {
    int err = errno;
    releaseSlot(*slot);
    return Error::fromErrno("bpf_map_update_elem", kStatsMapName, err, std::to_string(*slot));
  }
  sched_monitor_entry& entry = table[index];
  entry.slot = *slot;
  entry.island = 0;
  // Published last: a program that sees the id sees its slot.
  __atomic_store_n(&entry.cgroup_id, cgroupId, __ATOMIC_RELEASE);
  if (homeUsers_[home]++ == 0)
    __atomic_fetch_or(&skel_->bss->monitored_homes[home / 64], uint64_t{1} << (home % 64),
                      __ATOMIC_RELEASE);
  tableIndex_.emplace(cgroupId, static_cast<uint32_t>(index));
  slotOwner_[*slot] = cgroupId;
  if (usesCgroupStorage()) {
    // The mark the programs test before looking the id up in the table.
    if (auto marked = writeStorageEntry(cgroupId, *slot, 0); !marked) {
      forget(cgroupId);
      return marked.error();
    }
  }
  return ok();
}

void SchedTelemetry::releaseSlot(uint32_t slot) {
  freeSlots_.push_back(slot);
  std::push_heap(freeSlots_.begin(), freeSlots_.end(), std::greater<>());
}

Result<UniqueFd> SchedTelemetry::openCgroup(uint64_t cgroupId) const {
  alignas(file_handle) unsigned char buffer[sizeof(file_handle) + sizeof(cgroupId)];
  auto* handle = reinterpret_cast<file_handle*>(buffer);
  handle->handle_bytes = sizeof(cgroupId);
  handle->handle_type = kKernfsFileHandleType;
  std::memcpy(handle->f_handle, &cgroupId, sizeof(cgroupId));
  int fd = ::open_by_handle_at(mountFd_.get(), handle, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return Error::fromErrno("open_by_handle_at (cgroup id)", kStorageMapName, errno,
                            std::to_string(cgroupId));
  return UniqueFd(fd);
}

Result<void> SchedTelemetry::writeStorageEntry(uint64_t cgroupId, uint32_t slot, uint32_t island) {
  auto cgroup = openCgroup(cgroupId);
  if (!cgroup) return cgroup.error();
  sched_monitor_entry entry{};
  entry.cgroup_id = cgroupId;
  entry.slot = slot;
  entry.island = island;
  int key = cgroup->get();
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.monitored_cgroups), &key, &entry, BPF_ANY))
    return Error::fromErrno("bpf_map_update_elem", kStorageMapName, errno,
                            std::to_string(cgroupId));
  return ok();
}

void SchedTelemetry::forget(uint64_t cgroupId) {
  auto it = tableIndex_.find(cgroupId);
  if (it == tableIndex_.end()) return;
  if (usesCgroupStorage()) {
    // A cgroup that is gone took its storage with it.
    if (auto cgroup = openCgroup(cgroupId)) {
      int key = cgroup->get();
      bpf_map_delete_elem(bpf_map__fd(skel_->maps.monitored_cgroups), &key);
    }
  }
  sched_monitor_entry* table = skel_->bss->monitored;
  uint32_t index = it->second;
  uint32_t slot = table[index].slot;
  __atomic_store_n(&table[index].cgroup_id, SCHED_MONITOR_REMOVED, __ATOMIC_RELEASE);
  // A removed entry followed by a free one ends every probe chain through
  // it, so it (and removed ones before it) can become free again; this keeps
  // lookups of unmonitored ids short as workloads come and go.
  auto next = [](uint32_t i) { return (i + 1) & (SCHED_MONITOR_TABLE_SIZE - 1); };
  auto previous = [](uint32_t i) { return (i - 1) & (SCHED_MONITOR_TABLE_SIZE - 1); };
  if (table[next(index)].cgroup_id == SCHED_MONITOR_EMPTY) {
    for (uint32_t i = index; table[i].cgroup_id == SCHED_MONITOR_REMOVED; i = previous(i))
      __atomic_store_n(&table[i].cgroup_id, SCHED_MONITOR_EMPTY, __ATOMIC_RELEASE);
  }
  const uint32_t home = sched_monitor_home(cgroupId);
  if (--homeUsers_[home] == 0)
    __atomic_fetch_and(&skel_->bss->monitored_homes[home / 64], ~(uint64_t{1} << (home % 64)),
                       __ATOMIC_RELEASE);
  // No owner: a slot number cached by a program for a task of this cgroup
  // is no longer trusted (the counters are zeroed again when reused).
  const int cpus = libbpf_num_possible_cpus();
  std::vector<sched_cgroup_stats> unowned(static_cast<size_t>(std::max(cpus, 1)));
  bpf_map_update_elem(bpf_map__fd(skel_->maps.cgroup_stats), &slot, unowned.data(), BPF_ANY);
  tableIndex_.erase(it);
  slotOwner_[slot] = 0;
  releaseSlot(slot);
}

Result<void> SchedTelemetry::setIsland(uint64_t cgroupId, uint32_t island) {
  if (island >= SCHED_MAX_ISLANDS)
    return Error::invalid("set island", "sched_telemetry/monitored", std::to_string(island),
                          "island numbers are 0.." + std::to_string(SCHED_MAX_ISLANDS - 1));
  if (auto monitoredNow = monitor(cgroupId); !monitoredNow) return monitoredNow.error();
  __atomic_store_n(&skel_->bss->monitored[tableIndex_.at(cgroupId)].island, island,
                   __ATOMIC_RELEASE);
  return ok();
}

Result<std::unordered_map<uint64_t, SchedCounters>> SchedTelemetry::read() const {
  std::unordered_map<uint64_t, SchedCounters> out;
  out.reserve(tableIndex_.size());
  auto read = readPerCpuArray<sched_cgroup_stats>(
      bpf_map__fd(skel_->maps.cgroup_stats), slotsInUse_, kStatsMapName,
      [&](uint32_t slot, std::span<const sched_cgroup_stats> perCpu) {
        if (slot < slotOwner_.size() && slotOwner_[slot] != 0)
          out[slotOwner_[slot]] = sumPerCpu(perCpu);
      });
  if (!read) return read.error();
  return out;
}

Result<SchedErrors> SchedTelemetry::errors() const {
  int fd = bpf_map__fd(skel_->maps.sched_errors);
  auto storage = readPerCpuCounter(fd, SCHED_ERROR_TASK_STORAGE, "sched_telemetry/sched_errors");
  if (!storage) return storage.error();
  return SchedErrors{refused_, *storage};
}

Result<void> SchedTelemetry::reattachEmptyBaseline() {
  if (!bpf_program__autoload(skel_->progs.empty_sched_switch))
    return Error::invalid("reattach", "sched_telemetry/empty_sched_switch", "",
                          "the empty baseline was not loaded (withEmptyBaseline)");
  bpf_link__destroy(skel_->links.empty_sched_switch);
  skel_->links.empty_sched_switch = bpf_program__attach(skel_->progs.empty_sched_switch);
  if (!skel_->links.empty_sched_switch)
    return Error::fromErrno("bpf attach", "sched_telemetry/empty_sched_switch", errno);
  return ok();
}

int SchedTelemetry::schedSwitchProgFd() const {
  return bpf_program__fd(skel_->progs.sched_switch);
}
int SchedTelemetry::wakeupProgFd() const {
  return bpf_program__autoload(skel_->progs.sched_wakeup)
             ? bpf_program__fd(skel_->progs.sched_wakeup)
             : -1;
}
int SchedTelemetry::wakeupNewProgFd() const {
  return bpf_program__autoload(skel_->progs.sched_wakeup_new)
             ? bpf_program__fd(skel_->progs.sched_wakeup_new)
             : -1;
}
int SchedTelemetry::pageFaultProgFd() const {
  return bpf_program__autoload(skel_->progs.page_fault_user)
             ? bpf_program__fd(skel_->progs.page_fault_user)
             : -1;
}
int SchedTelemetry::emptyProgFd() const {
  return bpf_program__autoload(skel_->progs.empty_sched_switch)
             ? bpf_program__fd(skel_->progs.empty_sched_switch)
             : -1;
}

}  // namespace Atoll::telemetry
