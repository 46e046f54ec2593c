#pragma once
// The telemetry collector: every tick it reads the BPF maps' cumulative
// counters, maps cgroup ids to workloads, reads each workload's cgroupfs
// files on kept descriptors, turns counter deltas into rates and emits one
// sample per metric into the forecaster's ring. A signal whose program or
// file is unavailable is listed in degraded() and left out of samples;
// nothing is ever reported as zero for want of data.
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "bpf/collector/CgroupDiscovery.h"
#include "bpf/collector/CgroupReader.h"
#include "bpf/collector/LibvirtDomainWatch.h"
#include "bpf/collector/WorkloadRegistry.h"
#include "bpf/loaders/BlockTelemetry.h"
#include "bpf/loaders/NetTelemetry.h"
#include "bpf/loaders/SchedTelemetry.h"
#include "forecast/SampleRing.h"

namespace Atoll::telemetry {

// The cgroup2 mount: /sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified
// on a hybrid one.
std::string defaultCgroup2Mount();

struct CollectorOptions {
  std::string cgroupMount = defaultCgroup2Mount();
  std::vector<std::string> selectors = {"machine.slice/*"};
  std::string libvirtUri = "qemu:///system";  // empty: no libvirt discovery
  bool schedProbe = true;
  bool netProbe = true;
  bool blockProbe = true;
  // The network programs observe this subtree (relative to the mount,
  // empty = the whole mount).
  std::string netSubtree;
  int discoverEveryTicks = 1;
  // How long a discovery waits for libvirt's domain list before it goes on
  // with the last one (libvirt is asked on a thread of its own).
  std::chrono::milliseconds libvirtTimeout{500};
  uint32_t maxCgroups = 10240;
  // memory.stat and the *.pressure files are read for each workload every
  // this many ticks (spread over the ticks, not all at once); PSI's avg10
  // is itself a 10 s average the kernel refreshes every 2 s.
  int slowSignalsEveryTicks = 8;
  // Exact cross-island wait (per-CPU island clocks on every context switch);
  // islands are set with Collector::setIsland.
  bool trackIslands = false;
};

// Traffic between two workloads on this host (the peer join of the traffic
// matrix), cumulative since the collector started: bytes are IP + transport
// headers + payload as the cgroup_skb programs see them.
struct WorkloadTraffic {
  uint32_t workload = 0;  // the other workload
  std::string name;
  uint64_t txBytes = 0;  // this workload sent to it
  uint64_t rxBytes = 0;  // it sent to this workload

  bool operator==(const WorkloadTraffic&) const = default;
};

struct WorkloadSnapshot {
  Workload workload;
  double intervalSeconds = 0;
  std::optional<double> cpuCores;  // on-CPU time / interval (BPF)
  // cpu.stat usage_usec over the time since it was last read: every tick
  // without the scheduler program, else with the slow signals (absent on
  // the ticks in between).
  std::optional<double> cgroupCpuCores;
  std::optional<double> runqP50Us;
  std::optional<double> runqP99Us;
  std::optional<double> runqWaitPerSecond;  // seconds waited per second
  std::optional<double> switchesPerSecond;
  std::optional<uint64_t> memoryBytes;
  std::optional<double> cpuPressureSome10;
  std::optional<double> memoryPressureSome10;
  std::optional<double> ioPressureSome10;
  std::optional<double> rxBytesPerSecond;
  std::optional<double> txBytesPerSecond;
  std::optional<double> diskReadBytesPerSecond;
  std::optional<double> diskWriteBytesPerSecond;
  std::optional<double> diskP99Us;
  // User page faults: from the exceptions:page_fault_user program, or from
  // memory.stat pgfault deltas where the program cannot attach (see
  // Collector::degraded()); major faults only from memory.stat.
  std::optional<double> pageFaultsPerSecond;
  std::optional<double> majorPageFaultsPerSecond;
  // Share of the run-queue wait spent behind another island's tasks
  // (trackIslands), seconds per second.
  std::optional<double> crossIslandWaitPerSecond;
  // Local workloads this one exchanged traffic with (refreshed every
  // slowSignalsEveryTicks ticks: walking the flow map costs two system
  // calls per flow).
  std::vector<WorkloadTraffic> talksTo;
};

struct TickReport {
  int64_t timestampNs = 0;
  std::vector<WorkloadSnapshot> workloads;  // workloads with a full interval
  std::vector<Workload> born;
  std::vector<Workload> ended;
  uint64_t samplesPushed = 0;
  uint64_t samplesDropped = 0;  // ring full
  SchedErrors schedErrors;
  NetErrors netErrors;
  BlockErrors blockErrors;
  std::vector<std::string> problems;  // this tick's read failures
};

class Collector {
 public:
  // ring may be null (atoll top without a forecaster).
  static Result<std::unique_ptr<Collector>> start(const CollectorOptions& options,
                                                  forecast::SampleRing* ring);
  TickReport tick();
  // One line per signal that is off, with the reason.
  const std::vector<std::string>& degraded() const { return degraded_; }
  const WorkloadRegistry& registry() const { return registry_; }
  // libvirt discovery: "" (off, or not asked yet), "answering", "failing"
  // or "late", and what is wrong when it is not answering.
  const std::string& libvirtState() const { return libvirtState_; }
  const std::string& libvirtProblem() const { return libvirtProblem_; }
  // Island membership of a workload (all its cgroups) for the cross-island
  // wait; 0 = none. Needs CollectorOptions::trackIslands.
  Result<void> setIsland(uint32_t workload, uint32_t island);
  // Turns the cross-island wait on or off while running: the scheduler
  // programs are reloaded with or without island clocks and every tracked
  // cgroup is monitored again (workload numbers and other signals carry on;
  // the scheduler counters of the tick in progress restart from the
  // reload). On failure the running programs stay as they were.
  Result<void> setTrackIslands(bool on);
  bool tracksIslands() const { return sched_ && options_.trackIslands; }

 private:
  struct Tracked {
    Workload workload;
    std::vector<uint64_t> subtreeIds;
    std::optional<CgroupReader> reader;
    bool haveBaseline = false;
    int64_t lastNs = 0;
    std::optional<CpuStat> cpuStat;
    int64_t cpuStatNs = 0;  // when cpuStat was read
    uint32_t island = 0;
    // Last values of the signals read every slowSignalsEveryTicks.
    bool haveSlowSignals = false;
    std::optional<double> cpuPressureSome10;
    std::optional<double> memoryPressureSome10;
    std::optional<double> ioPressureSome10;
    std::optional<uint64_t> pgfault;
    std::optional<uint64_t> pgmajfault;
    int64_t faultsReadNs = 0;
    std::optional<double> pageFaultsPerSecond;
    std::optional<double> majorPageFaultsPerSecond;
  };

  Collector(CollectorOptions options, Dir mount, forecast::SampleRing* ring)
      : options_(std::move(options)), mount_(std::move(mount)), ring_(ring) {}
  void discover(TickReport& report);
  // Logs libvirt's state when it changes; the domains to use, or null.
  const std::vector<LibvirtDomain>* followLibvirt(const LibvirtAnswer& answer);
  // Re-reads the traffic matrix and joins it to workloads (talksTo_).
  void joinTraffic(TickReport& report);
  // Queues one sample for this tick; flushSamples hands the tick's samples
  // to the ring in one claim, so a tick costs the ring one compare-and-swap.
  void push(uint32_t workload, forecast::Metric metric, int64_t timestampNs, double value);
  void flushSamples(TickReport& report);

  CollectorOptions options_;
  Dir mount_;
  forecast::SampleRing* ring_;
  std::unique_ptr<SchedTelemetry> sched_;
  std::unique_ptr<NetTelemetry> net_;
  std::unique_ptr<BlockTelemetry> block_;
  WorkloadRegistry registry_;
  std::map<uint32_t, Tracked> tracked_;
  // Each cgroup's counters as last read. A workload's baseline is the sum
  // over the cgroups in its subtree now, so a child cgroup leaving the
  // subtree does not make the workload's sum go backwards (which a counter
  // delta would take for a reset and report the whole history as new).
  std::unordered_map<uint64_t, SchedCounters> lastSched_;
  std::unordered_map<uint64_t, NetCounters> lastNet_;
  std::unordered_map<uint64_t, BlockCounters> lastBlock_;
  std::vector<std::string> degraded_;
  std::unique_ptr<LibvirtDomainWatch> libvirtWatch_;  // null: no libvirt discovery
  std::string libvirtState_;                          // "", answering, failing, late
  std::string libvirtProblem_;
  bool forceDiscovery_ = true;
  uint64_t ticks_ = 0;
  std::map<uint32_t, std::vector<WorkloadTraffic>> talksTo_;
  std::vector<forecast::Sample> pendingSamples_;  // this tick's, kept for its capacity
};

}  // namespace Atoll::telemetry
