#include "bpf/collector/Collector.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>

#include "bpf/collector/LibvirtDomains.h"
#include "bpf/collector/Log2Histogram.h"
#include "bpf/collector/TrafficMatrix.h"

namespace Atoll::telemetry {

namespace {

int64_t monotonicNs() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

int64_t realtimeNs() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

uint64_t counterDelta(uint64_t later, uint64_t earlier) {
  // A map entry deleted and recreated restarts from zero.
  return later >= earlier ? later - earlier : later;
}

}  // namespace

std::string defaultCgroup2Mount() {
  if (::access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0) return "/sys/fs/cgroup";
  return "/sys/fs/cgroup/unified";
}

Result<std::unique_ptr<Collector>> Collector::start(const CollectorOptions& options,
                                                    forecast::SampleRing* ring) {
  if (options.discoverEveryTicks < 1)
    return Error::invalid("configure", "collector", std::to_string(options.discoverEveryTicks),
                          "discovery interval must be at least one tick");
  if (options.slowSignalsEveryTicks < 1)
    return Error::invalid("configure", "collector", std::to_string(options.slowSignalsEveryTicks),
                          "memory.stat/PSI interval must be at least one tick");
  auto mount = Dir::open(options.cgroupMount);
  if (!mount) return mount.error();
  if (options.libvirtTimeout.count() < 1)
    return Error::invalid("configure", "collector", std::to_string(options.libvirtTimeout.count()),
                          "libvirt timeout must be at least 1 ms");
  std::unique_ptr<Collector> self(new Collector(options, std::move(*mount), ring));
  if (!options.libvirtUri.empty())
    self->libvirtWatch_ = std::make_unique<LibvirtDomainWatch>(options.libvirtUri);
  if (options.schedProbe) {
    SchedTelemetryOptions schedOptions;
    schedOptions.maxCgroups = std::min(options.maxCgroups, maxMonitoredCgroups());
    schedOptions.trackIslands = options.trackIslands;
    auto sched = SchedTelemetry::start(schedOptions);
    if (sched) {
      self->sched_ = std::move(*sched);
      if (!self->sched_->pageFaultsUnavailable().empty())
        self->degraded_.push_back(
            "page faults (BPF tp_btf/page_fault_user): " + self->sched_->pageFaultsUnavailable() +
            "; counted from memory.stat pgfault/pgmajfault where the memory controller is on");
    } else {
      self->degraded_.push_back("cpu time, run-queue latency, context switches: " +
                                sched.error().message());
      self->degraded_.push_back(
          "page faults (BPF tp_btf/page_fault_user): scheduler programs not loaded; counted "
          "from memory.stat pgfault/pgmajfault where the memory controller is on");
    }
  } else {
    self->degraded_.push_back("cpu time, run-queue latency, context switches: disabled");
  }
  if (self->sched_ && !options.trackIslands)
    self->degraded_.push_back("cross-island wait: disabled (CollectorOptions::trackIslands)");
  if (options.netProbe) {
    NetTelemetryOptions netOptions;
    netOptions.cgroupPath = options.netSubtree.empty()
                                ? options.cgroupMount
                                : options.cgroupMount + "/" + options.netSubtree;
    netOptions.maxCgroups = options.maxCgroups;
    auto net = NetTelemetry::start(netOptions);
    if (net) {
      self->net_ = std::move(*net);
    } else {
      self->degraded_.push_back("network bytes and packets: " + net.error().message());
    }
  } else {
    self->degraded_.push_back("network bytes and packets: disabled");
  }
  if (options.blockProbe) {
    BlockTelemetryOptions blockOptions;
    blockOptions.maxCgroups = options.maxCgroups;
    auto block = BlockTelemetry::start(blockOptions);
    if (block) {
      self->block_ = std::move(*block);
    } else {
      self->degraded_.push_back("block I/O bytes and latency: " + block.error().message());
    }
  } else {
    self->degraded_.push_back("block I/O bytes and latency: disabled");
  }
  for (const std::string& line : self->degraded_) spdlog::warn("telemetry degraded: {}", line);
  return self;
}

const std::vector<LibvirtDomain>* Collector::followLibvirt(const LibvirtAnswer& answer) {
  using Kind = LibvirtAnswer::Kind;
  const auto seconds = [](std::chrono::steady_clock::duration d) {
    return fmt::format("{:.1f}", std::chrono::duration<double>(d).count());
  };
  std::string state;
  const std::vector<LibvirtDomain>* domains = nullptr;
  switch (answer.kind) {
    case Kind::kListed:
      state = "answering";
      domains = &answer.domains;
      if (!libvirtState_.empty() && libvirtState_ != state)
        spdlog::info("libvirt discovery on again: {} answers", options_.libvirtUri);
      break;
    case Kind::kFailed:
      state = "failing";
      if (libvirtState_ != state)
        spdlog::warn("libvirt discovery off until libvirt answers: {}", answer.error->message());
      libvirtProblem_ = answer.error->message();
      break;
    case Kind::kLate:
      // The last list stands: a slow libvirtd must not make its VMs vanish
      // from telemetry and come back as new workloads.
      state = "late";
      domains = answer.hasEarlierList ? &answer.domains : nullptr;
      libvirtProblem_ = fmt::format(
          "libvirt ({}) has not answered for {} s; {}", options_.libvirtUri,
          seconds(answer.waiting),
          answer.hasEarlierList ? fmt::format("its domains as listed {} s ago stand until it does",
                                              seconds(answer.listAge))
                                : std::string("no libvirt domains until it does"));
      if (libvirtState_ != state) spdlog::warn("{}", libvirtProblem_);
      break;
  }
  if (state == "answering") libvirtProblem_.clear();
  libvirtState_ = state;
  return domains;
}

void Collector::discover(TickReport& report) {
  std::vector<WorkloadCgroup> found;
  DiscoveryOptions discovery;
  discovery.selectors = options_.selectors;
  if (auto bySelectors = discoverBySelectors(mount_, discovery)) {
    found = std::move(*bySelectors);
  } else {
    report.problems.push_back(bySelectors.error().message());
  }
  if (libvirtWatch_) {
    const LibvirtAnswer answer = libvirtWatch_->refresh(options_.libvirtTimeout);
    const std::vector<LibvirtDomain>* domains = followLibvirt(answer);
    if (domains) {
      for (const LibvirtDomain& domain : *domains) {
        auto described = describeCgroup(mount_, domain.cgroupPath);
        if (!described) continue;
        described->cgroup.name = domain.name;
        described->cgroup.uuid = domain.uuid;
        // A domain also matched by a selector keeps its libvirt identity.
        std::erase_if(found, [&](const WorkloadCgroup& w) {
          return w.cgroup.cgroupId == described->cgroup.cgroupId;
        });
        found.push_back(std::move(*described));
      }
    }
  }
  std::vector<DiscoveredCgroup> cgroups;
  for (const WorkloadCgroup& w : found) cgroups.push_back(w.cgroup);
  Reconciliation changes = registry_.reconcile(cgroups);
  // The network maps are walked whole to find an ended cgroup's entries, so
  // all cgroups that ended in this pass, whole workloads and children that
  // left a workload's subtree, are dropped in one walk.
  std::vector<uint64_t> endedCgroupIds;
  for (const Workload& ended : changes.ended) {
    auto it = tracked_.find(ended.number);
    if (it != tracked_.end()) {
      for (uint64_t id : it->second.subtreeIds) {
        if (sched_) sched_->forget(id);
        if (block_) block_->forget(id);
        endedCgroupIds.push_back(id);
      }
      tracked_.erase(it);
    }
    report.ended.push_back(ended);
  }
  for (const Workload& born : changes.born) {
    Tracked tracked;
    tracked.workload = born;
    tracked_.emplace(born.number, std::move(tracked));
    report.born.push_back(born);
  }
  for (const WorkloadCgroup& w : found) {
    auto workload = registry_.byCgroupId(w.cgroup.cgroupId);
    if (!workload) continue;
    Tracked& tracked = tracked_[workload->number];
    tracked.workload = *workload;
    if (tracked.subtreeIds != w.subtreeIds) {
      for (uint64_t id : tracked.subtreeIds) {
        if (std::find(w.subtreeIds.begin(), w.subtreeIds.end(), id) != w.subtreeIds.end()) continue;
        if (sched_) sched_->forget(id);
        if (block_) block_->forget(id);
        endedCgroupIds.push_back(id);
      }
      // The scheduler programs measure only monitored cgroups: follow the
      // subtree as a VM's children come and go.
      if (sched_) {
        for (uint64_t id : w.subtreeIds) {
          auto monitored =
              tracked.island ? sched_->setIsland(id, tracked.island) : sched_->monitor(id);
          if (!monitored) report.problems.push_back(monitored.error().message());
        }
      }
      tracked.subtreeIds = w.subtreeIds;
    }
    if (!tracked.reader) {
      auto dir = mount_.openChild(w.cgroup.path);
      if (!dir) continue;
      // The directory must still be the cgroup discovery saw.
      auto id = cgroupIdOf(*dir);
      if (!id || *id != w.cgroup.cgroupId) continue;
      auto reader = CgroupReader::open(*dir);
      if (reader) {
        tracked.reader = std::move(*reader);
      } else {
        report.problems.push_back(reader.error().message());
      }
    }
  }
  if (net_) net_->forget(endedCgroupIds);
}

Result<void> Collector::setIsland(uint32_t workload, uint32_t island) {
  auto it = tracked_.find(workload);
  if (it == tracked_.end())
    return Error::invalid("set island", "collector", std::to_string(workload), "no such workload");
  if (!sched_)
    return Error::invalid("set island", "collector", std::to_string(workload),
                          "scheduler programs not loaded");
  for (uint64_t id : it->second.subtreeIds)
    if (auto set = sched_->setIsland(id, island); !set) return set.error();
  it->second.island = island;
  return ok();
}

void Collector::joinTraffic(TickReport& report) {
  auto flows = net_->readFlows();
  if (!flows) {
    report.problems.push_back(flows.error().message());
    return;
  }
  auto owners = net_->readLocalEndpoints();
  if (!owners) {
    report.problems.push_back(owners.error().message());
    return;
  }
  std::unordered_map<uint64_t, uint32_t> workloadOf;
  for (const auto& [number, tracked] : tracked_)
    for (uint64_t id : tracked.subtreeIds) workloadOf[id] = number;
  std::map<std::pair<uint32_t, uint32_t>, uint64_t> sent;  // (from, to) -> bytes
  for (const CgroupTraffic& cell : joinLocalPeers(*flows, *owners)) {
    auto from = workloadOf.find(cell.fromCgroup);
    auto to = workloadOf.find(cell.toCgroup);
    if (from == workloadOf.end() || to == workloadOf.end() || from->second == to->second) continue;
    sent[{from->second, to->second}] += cell.bytes;
  }
  std::map<uint32_t, std::map<uint32_t, WorkloadTraffic>> byWorkload;
  for (const auto& [pair, bytes] : sent) {
    const auto [from, to] = pair;
    WorkloadTraffic& out = byWorkload[from][to];
    out.workload = to;
    out.name = tracked_.at(to).workload.cgroup.name;
    out.txBytes += bytes;
    WorkloadTraffic& in = byWorkload[to][from];
    in.workload = from;
    in.name = tracked_.at(from).workload.cgroup.name;
    in.rxBytes += bytes;
  }
  talksTo_.clear();
  for (auto& [number, peers] : byWorkload)
    for (auto& [peer, traffic] : peers) talksTo_[number].push_back(std::move(traffic));
}

Result<void> Collector::setTrackIslands(bool on) {
  if (!sched_)
    return Error::invalid("track islands", "collector", on ? "on" : "off",
                          "scheduler programs not loaded");
  if (on == options_.trackIslands) return ok();
  SchedTelemetryOptions schedOptions;
  schedOptions.maxCgroups = std::min(options_.maxCgroups, maxMonitoredCgroups());
  schedOptions.trackIslands = on;
  schedOptions.pageFaults = sched_->pageFaultsUnavailable().empty();
  auto reloaded = SchedTelemetry::start(schedOptions);
  if (!reloaded) return reloaded.error();
  for (auto& [number, tracked] : tracked_) {
    for (uint64_t id : tracked.subtreeIds) {
      auto monitored =
          tracked.island ? (*reloaded)->setIsland(id, tracked.island) : (*reloaded)->monitor(id);
      if (!monitored) return monitored.error();
    }
  }
  sched_ = std::move(*reloaded);
  // The new programs count from zero.
  lastSched_.clear();
  options_.trackIslands = on;
  const std::string disabled = "cross-island wait: disabled (CollectorOptions::trackIslands)";
  std::erase(degraded_, disabled);
  if (!on) degraded_.push_back(disabled);
  return ok();
}

void Collector::push(uint32_t workload, forecast::Metric metric, int64_t timestampNs,
                     double value) {
  if (!ring_) return;
  pendingSamples_.push_back(forecast::Sample{{workload, metric}, timestampNs, value});
}

void Collector::flushSamples(TickReport& report) {
  if (!ring_ || pendingSamples_.empty()) return;
  // The ring counts the samples that did not fit as dropped.
  const size_t pushed = ring_->tryPushBatch(pendingSamples_);
  report.samplesPushed += pushed;
  report.samplesDropped += pendingSamples_.size() - pushed;
  pendingSamples_.clear();
}

TickReport Collector::tick() {
  TickReport report;
  report.timestampNs = realtimeNs();
  if (forceDiscovery_ || ticks_ % static_cast<uint64_t>(options_.discoverEveryTicks) == 0) {
    discover(report);
    forceDiscovery_ = false;
  }
  ++ticks_;
  const int64_t now = monotonicNs();

  // A map that could not be read leaves the last reading as the baseline.
  std::unordered_map<uint64_t, SchedCounters> sched;
  bool schedRead = false;
  if (sched_) {
    if (auto counters = sched_->read()) {
      sched = std::move(*counters);
      schedRead = true;
    } else {
      report.problems.push_back(counters.error().message());
    }
    if (auto errors = sched_->errors()) report.schedErrors = *errors;
  }
  std::unordered_map<uint64_t, NetCounters> net;
  bool netRead = false;
  if (net_) {
    if (auto counters = net_->read()) {
      net = std::move(*counters);
      netRead = true;
    } else {
      report.problems.push_back(counters.error().message());
    }
    if (auto errors = net_->errors()) report.netErrors = *errors;
  }
  // The first tick, then every slowSignalsEveryTicks.
  if (net_ && (ticks_ - 1) % static_cast<uint64_t>(options_.slowSignalsEveryTicks) == 0)
    joinTraffic(report);
  std::unordered_map<uint64_t, BlockCounters> block;
  bool blockRead = false;
  if (block_) {
    if (auto counters = block_->read()) {
      block = std::move(*counters);
      blockRead = true;
    } else {
      report.problems.push_back(counters.error().message());
    }
    if (auto errors = block_->errors()) report.blockErrors = *errors;
  }

  for (auto& [number, tracked] : tracked_) {
    // Now and at the last reading, over the same cgroups: those in the
    // subtree now.
    SchedCounters schedNow, schedBefore;
    NetCounters netNow, netBefore;
    BlockCounters blockNow, blockBefore;
    for (uint64_t id : tracked.subtreeIds) {
      if (auto it = sched.find(id); it != sched.end()) schedNow += it->second;
      if (auto it = net.find(id); it != net.end()) netNow += it->second;
      if (auto it = block.find(id); it != block.end()) blockNow += it->second;
      if (auto it = lastSched_.find(id); it != lastSched_.end()) schedBefore += it->second;
      if (auto it = lastNet_.find(id); it != lastNet_.end()) netBefore += it->second;
      if (auto it = lastBlock_.find(id); it != lastBlock_.end()) blockBefore += it->second;
    }
    std::optional<CgroupReading> reading;
    const bool slowTick =
        !tracked.haveSlowSignals ||
        (ticks_ + number) % static_cast<uint64_t>(options_.slowSignalsEveryTicks) == 0;
    if (tracked.reader) {
      // With the scheduler program measuring CPU time, cpu.stat is only
      // the cross-check (cgroupCpuCores) and is read with the slow signals.
      auto read = tracked.reader->read(slowTick, slowTick || !sched_);
      if (!read) {
        if (read.error().errnum == ENODEV || read.error().errnum == ENOENT) {
          // Removed under us: the series ends, whatever takes its
          // place.
          registry_.markGone(number);
          forceDiscovery_ = true;
        } else {
          report.problems.push_back(read.error().message());
        }
        continue;
      }
      reading = std::move(*read);
    }
    const bool full = tracked.haveBaseline && now > tracked.lastNs;
    WorkloadSnapshot snap;
    snap.workload = tracked.workload;
    if (full) {
      const double seconds = static_cast<double>(now - tracked.lastNs) / 1e9;
      snap.intervalSeconds = seconds;
      if (sched_) {
        snap.cpuCores = static_cast<double>(counterDelta(schedNow.oncpuNs, schedBefore.oncpuNs)) /
                        1e9 / seconds;
        snap.runqWaitPerSecond =
            static_cast<double>(counterDelta(schedNow.runqWaitNs, schedBefore.runqWaitNs)) / 1e9 /
            seconds;
        snap.switchesPerSecond =
            static_cast<double>(counterDelta(schedNow.switches, schedBefore.switches)) / seconds;
        if (sched_->pageFaultsUnavailable().empty())
          snap.pageFaultsPerSecond =
              static_cast<double>(counterDelta(schedNow.pageFaults, schedBefore.pageFaults)) /
              seconds;
        if (options_.trackIslands)
          snap.crossIslandWaitPerSecond =
              static_cast<double>(
                  counterDelta(schedNow.crossIslandWaitNs, schedBefore.crossIslandWaitNs)) /
              1e9 / seconds;
        Log2Histogram delta = histogramDelta(schedNow.runqHistogram, schedBefore.runqHistogram);
        if (totalCount(delta) > 0) {
          const double unitUs = static_cast<double>(sched_->histogramUnitNs()) / 1000.0;
          snap.runqP50Us = histogramQuantile(delta, 0.50) * unitUs;
          snap.runqP99Us = histogramQuantile(delta, 0.99) * unitUs;
        }
      }
      if (net_) {
        snap.rxBytesPerSecond =
            static_cast<double>(counterDelta(netNow.rxBytes, netBefore.rxBytes)) / seconds;
        snap.txBytesPerSecond =
            static_cast<double>(counterDelta(netNow.txBytes, netBefore.txBytes)) / seconds;
      }
      if (block_) {
        snap.diskReadBytesPerSecond =
            static_cast<double>(counterDelta(blockNow.readBytes, blockBefore.readBytes)) / seconds;
        snap.diskWriteBytesPerSecond =
            static_cast<double>(counterDelta(blockNow.writeBytes, blockBefore.writeBytes)) /
            seconds;
        Log2Histogram delta =
            histogramDelta(blockNow.latencyHistogram, blockBefore.latencyHistogram);
        if (totalCount(delta) > 0) snap.diskP99Us = histogramQuantile(delta, 0.99);
      }
      if (reading && reading->cpu && tracked.cpuStat && now > tracked.cpuStatNs)
        snap.cgroupCpuCores =
            static_cast<double>(counterDelta(reading->cpu->usageUsec, tracked.cpuStat->usageUsec)) /
            1e6 / (static_cast<double>(now - tracked.cpuStatNs) / 1e9);
    }
    if (reading && slowTick) {
      auto avg10 = [](const std::optional<Pressure>& p) {
        return p ? std::optional<double>(p->some.avg10) : std::nullopt;
      };
      tracked.cpuPressureSome10 = avg10(reading->cpuPressure);
      tracked.memoryPressureSome10 = avg10(reading->memoryPressure);
      tracked.ioPressureSome10 = avg10(reading->ioPressure);
      auto statValue = [&](std::string_view key) -> std::optional<uint64_t> {
        auto it = reading->memoryStat.find(key);
        return it == reading->memoryStat.end() ? std::nullopt : std::optional(it->second);
      };
      std::optional<uint64_t> pgfault = statValue("pgfault");
      std::optional<uint64_t> pgmajfault = statValue("pgmajfault");
      if (tracked.faultsReadNs && now > tracked.faultsReadNs) {
        const double seconds = static_cast<double>(now - tracked.faultsReadNs) / 1e9;
        auto rate = [&](std::optional<uint64_t> later, std::optional<uint64_t> earlier) {
          return later && earlier
                     ? std::optional(static_cast<double>(counterDelta(*later, *earlier)) / seconds)
                     : std::nullopt;
        };
        tracked.pageFaultsPerSecond = rate(pgfault, tracked.pgfault);
        tracked.majorPageFaultsPerSecond = rate(pgmajfault, tracked.pgmajfault);
      }
      tracked.pgfault = pgfault;
      tracked.pgmajfault = pgmajfault;
      tracked.faultsReadNs = now;
      tracked.haveSlowSignals = true;
    }
    if (reading) {
      snap.memoryBytes = reading->memoryCurrent;
      snap.cpuPressureSome10 = tracked.cpuPressureSome10;
      snap.memoryPressureSome10 = tracked.memoryPressureSome10;
      snap.ioPressureSome10 = tracked.ioPressureSome10;
      snap.majorPageFaultsPerSecond = tracked.majorPageFaultsPerSecond;
      if (!snap.pageFaultsPerSecond) snap.pageFaultsPerSecond = tracked.pageFaultsPerSecond;
      if (reading->cpu) {
        tracked.cpuStat = reading->cpu;
        tracked.cpuStatNs = now;
      }
    }
    tracked.lastNs = now;
    tracked.haveBaseline = true;
    if (!full) continue;
    // CPU from BPF when loaded, else from cpu.stat: both are real usage.
    if (auto cpu = snap.cpuCores ? snap.cpuCores : snap.cgroupCpuCores)
      push(number, forecast::Metric::Cpu, report.timestampNs, *cpu);
    if (snap.memoryBytes)
      push(number, forecast::Metric::Memory, report.timestampNs,
           static_cast<double>(*snap.memoryBytes));
    if (snap.diskReadBytesPerSecond && snap.diskWriteBytesPerSecond)
      push(number, forecast::Metric::Io, report.timestampNs,
           *snap.diskReadBytesPerSecond + *snap.diskWriteBytesPerSecond);
    if (snap.rxBytesPerSecond && snap.txBytesPerSecond)
      push(number, forecast::Metric::Network, report.timestampNs,
           *snap.rxBytesPerSecond + *snap.txBytesPerSecond);
    if (auto talks = talksTo_.find(number); talks != talksTo_.end()) snap.talksTo = talks->second;
    report.workloads.push_back(std::move(snap));
  }
  if (schedRead) lastSched_ = std::move(sched);
  if (netRead) lastNet_ = std::move(net);
  if (blockRead) lastBlock_ = std::move(block);
  flushSamples(report);
  return report;
}

}  // namespace Atoll::telemetry
