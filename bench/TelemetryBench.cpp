// Telemetry costs (root):
//  - per-event cost of each scheduler program from the kernel's own BPF
//    statistics (run_time_ns / run_cnt, enabled with BPF_ENABLE_STATS for
//    the run), next to an empty tp_btf sched_switch program in the same run;
//  - per-packet cost of the cgroup_skb network programs (with and without
//    the traffic matrix) the same way, next to empty cgroup_skb programs
//    attached to the same cgroup;
//  - collector cost per tick for 1,000 real cgroups under the cgroup2 mount,
//    next to just reading cpu.stat on kept descriptors of the same cgroups.
#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include <cstdio>
#include <thread>

#include "bpf/collector/CgroupReader.h"
#include "bpf/collector/Collector.h"
#include "bpf/loaders/NetTelemetry.h"
#include "bpf/loaders/SchedTelemetry.h"

namespace {

using namespace Atoll;
using namespace Atoll::telemetry;

struct ProgStats {
  uint64_t runTimeNs = 0;
  uint64_t runCount = 0;
};

ProgStats statsOf(int progFd) {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  if (progFd < 0 || bpf_obj_get_info_by_fd(progFd, &info, &len) != 0) return {};
  return {info.run_time_ns, info.run_cnt};
}

// Two threads handing a token back and forth through pipes: every hand-over
// is a wakeup and a context switch.
void pingPong(int rounds) {
  int ab[2], ba[2];
  if (::pipe(ab) != 0 || ::pipe(ba) != 0) return;
  std::thread peer([&] {
    char c;
    for (int i = 0; i < rounds; ++i) {
      if (::read(ab[0], &c, 1) != 1 || ::write(ba[1], &c, 1) != 1) break;
    }
  });
  char c = 'x';
  for (int i = 0; i < rounds; ++i) {
    if (::write(ab[1], &c, 1) != 1 || ::read(ba[0], &c, 1) != 1) break;
  }
  peer.join();
  for (int fd : {ab[0], ab[1], ba[0], ba[1]}) ::close(fd);
}

// Runs `work` in a child process placed in `cgroupDir` (a cgroup2
// directory), so its tasks are that cgroup's.
template <typename Work>
void inCgroupChild(const std::string& cgroupDir, Work work) {
  pid_t child = ::fork();
  if (child == 0) {
    FILE* procs = std::fopen((cgroupDir + "/cgroup.procs").c_str(), "w");
    if (!procs || std::fprintf(procs, "0\n") < 0 || std::fclose(procs) != 0) ::_exit(1);
    work();
    ::_exit(0);
  }
  int status = 0;
  if (child > 0) ::waitpid(child, &status, 0);
}

void pingPongInCgroup(const std::string& cgroupDir, int rounds) {
  inCgroupChild(cgroupDir, [rounds] { pingPong(rounds); });
}

// A cgroup for a benchmark's traffic, and the kernel's BPF run-time
// statistics turned on, both for the benchmark's lifetime: the statistics
// are turned off and the cgroup removed on every way out.
class StatsCgroup {
 public:
  explicit StatsCgroup(const std::string& name)
      : dir_(defaultCgroup2Mount() + "/" + name + "-" + std::to_string(::getpid())) {}
  StatsCgroup(const StatsCgroup&) = delete;
  StatsCgroup& operator=(const StatsCgroup&) = delete;
  ~StatsCgroup() {
    stopStats();
    if (made_) ::rmdir(dir_.c_str());
  }

  // False, with the benchmark skipped and why, when either is refused.
  bool start(benchmark::State& state) {
    if (::mkdir(dir_.c_str(), 0755) != 0 && errno != EEXIST) {
      state.SkipWithError("cannot create a cgroup (needs root and a cgroup2 mount)");
      return false;
    }
    made_ = true;
    statsFd_ = bpf_enable_stats(BPF_STATS_RUN_TIME);
    if (statsFd_ < 0) {
      state.SkipWithError("BPF_ENABLE_STATS failed (needs root and Linux 5.8)");
      return false;
    }
    return true;
  }
  void stopStats() {
    if (statsFd_ >= 0) ::close(statsFd_);
    statsFd_ = -1;
  }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  bool made_ = false;
  int statsFd_ = -1;
};

// Arg 0: ping-pong rounds; arg 1: 1 = the ping-pong runs in a monitored
// cgroup (every event takes the full path), 0 = in an unmonitored one (the
// cost every other task on the host pays); arg 2: 1 = monitored cgroups are
// marked by cgroup local storage, 0 = by the program's table of ids (kernels
// before 6.2).
//
// The first program called at a tracepoint pays for the shared page of JIT
// code being out of the TLB (context switches flush it under nested paging
// here), 30-60 ns that belong to neither program. So each program is
// measured in both positions: first the empty baseline is called first,
// then it is attached again, which puts it after the scheduler program.
// The ratios compare the two programs in the same position.
void BM_SchedProgramsPerEventCost(benchmark::State& state) {
  const bool monitoredPingPong = state.range(1) != 0;
  const std::string mount = defaultCgroup2Mount();
  StatsCgroup cgroup("atoll-bench-sched");
  if (!cgroup.start(state)) return;
  const std::string& cgroupDir = cgroup.dir();
  SchedTelemetryOptions options;
  options.withEmptyBaseline = true;
  options.cgroupStorage = state.range(2) != 0;
  options.cgroupMount = mount;
  auto sched = SchedTelemetry::start(options);
  if (!sched) {
    state.SkipWithError(sched.error().message().c_str());
    return;
  }
  if (options.cgroupStorage && !(*sched)->usesCgroupStorage()) {
    state.SkipWithError("kernel has no cgroup local storage (Linux 6.2)");
    return;
  }
  struct stat st {};
  if (::stat(cgroupDir.c_str(), &st) != 0 ||
      (monitoredPingPong && !(*sched)->monitor(static_cast<uint64_t>(st.st_ino)))) {
    state.SkipWithError("cannot monitor the benchmark cgroup");
    return;
  }
  const int rounds = static_cast<int>(state.range(0));
  // Empty baseline called first.
  ProgStats switch0 = statsOf((*sched)->schedSwitchProgFd());
  ProgStats empty0 = statsOf((*sched)->emptyProgFd());
  int64_t iterations = 0;
  for (auto _ : state) {
    pingPongInCgroup(cgroupDir, rounds);
    ++iterations;
  }
  ProgStats switch1 = statsOf((*sched)->schedSwitchProgFd());
  ProgStats empty1 = statsOf((*sched)->emptyProgFd());
  // Scheduler program called first.
  auto reattached = (*sched)->reattachEmptyBaseline();
  ProgStats switch2 = statsOf((*sched)->schedSwitchProgFd());
  ProgStats empty2 = statsOf((*sched)->emptyProgFd());
  for (int64_t i = 0; i < iterations && reattached; ++i) pingPongInCgroup(cgroupDir, rounds);
  ProgStats switch3 = statsOf((*sched)->schedSwitchProgFd());
  ProgStats empty3 = statsOf((*sched)->emptyProgFd());
  cgroup.stopStats();
  auto counters = (*sched)->read();
  sched->reset();
  if (!reattached) {
    state.SkipWithError(reattached.error().message().c_str());
    return;
  }
  auto perEvent = [](ProgStats a, ProgStats b) {
    uint64_t n = b.runCount - a.runCount;
    return n ? static_cast<double>(b.runTimeNs - a.runTimeNs) / static_cast<double>(n) : 0.0;
  };
  const double emptyFirst = perEvent(empty0, empty1);
  const double switchSecond = perEvent(switch0, switch1);
  const double emptySecond = perEvent(empty2, empty3);
  const double switchFirst = perEvent(switch2, switch3);
  // Names: <program>_<position> in ns per event.
  state.counters["empty_1st_ns"] = emptyFirst;
  state.counters["switch_1st_ns"] = switchFirst;
  state.counters["empty_2nd_ns"] = emptySecond;
  state.counters["switch_2nd_ns"] = switchSecond;
  state.counters["vs_empty_1st"] = emptyFirst > 0 ? switchFirst / emptyFirst : 0;
  state.counters["vs_empty_2nd"] = emptySecond > 0 ? switchSecond / emptySecond : 0;
  state.counters["switch_events"] = static_cast<double>(switch1.runCount - switch0.runCount);
  // Switches the programs attributed to the monitored cgroup: shows the
  // full path really ran.
  uint64_t monitoredSwitches = 0;
  if (counters)
    for (const auto& [id, c] : *counters) monitoredSwitches += c.switches;
  state.counters["monitored_switches"] = static_cast<double>(monitoredSwitches);
}
BENCHMARK(BM_SchedProgramsPerEventCost)
    ->ArgNames({"rounds", "monitored", "storage"})
    ->Args({5000, 0, 1})
    ->Args({5000, 1, 1})
    ->Args({5000, 0, 0})
    ->Args({5000, 1, 0})
    ->Iterations(3)
    ->Unit(benchmark::kMillisecond);

// UDP datagrams of 64 bytes over loopback between two sockets of one
// process: each is one egress and one ingress packet of its cgroup.
void udpLoopback(int datagrams) {
  int rx = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int tx = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (rx >= 0 && tx >= 0 && ::bind(rx, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(rx, reinterpret_cast<sockaddr*>(&addr), &len) == 0 &&
      ::connect(tx, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    char payload[64] = {};
    for (int i = 0; i < datagrams; ++i) {
      if (::send(tx, payload, sizeof(payload), 0) != sizeof(payload) ||
          ::recv(rx, payload, sizeof(payload), 0) != sizeof(payload))
        break;
    }
  }
  for (int fd : {rx, tx})
    if (fd >= 0) ::close(fd);
}

void udpLoopbackInCgroup(const std::string& cgroupDir, int datagrams) {
  inCgroupChild(cgroupDir, [datagrams] { udpLoopback(datagrams); });
}

// Arg 0: datagrams per iteration; arg 1: 1 = the traffic matrix is recorded
// (track_flows, the default), 0 = per-cgroup counters only. The traffic runs
// in the cgroup the programs are attached to, so every packet takes the full
// path. As for the scheduler programs, each program is measured in both
// positions: the empty baselines are attached first (called first), then
// attached again, which puts them after the counting programs.
void BM_NetProgramsPerPacketCost(benchmark::State& state) {
  StatsCgroup cgroup("atoll-bench-net");
  if (!cgroup.start(state)) return;
  const std::string& cgroupDir = cgroup.dir();
  NetTelemetryOptions options;
  options.cgroupPath = cgroupDir;
  options.trackFlows = state.range(1) != 0;
  options.withEmptyBaseline = true;
  auto net = NetTelemetry::start(options);
  if (!net) {
    state.SkipWithError(net.error().message().c_str());
    return;
  }
  const int datagrams = static_cast<int>(state.range(0));
  struct Snapshot {
    ProgStats egress, ingress, emptyEgress, emptyIngress;
  };
  auto snapshot = [&] {
    return Snapshot{statsOf((*net)->egressProgFd()), statsOf((*net)->ingressProgFd()),
                    statsOf((*net)->emptyEgressProgFd()), statsOf((*net)->emptyIngressProgFd())};
  };
  // Empty baselines called first.
  Snapshot before1 = snapshot();
  int64_t iterations = 0;
  for (auto _ : state) {
    udpLoopbackInCgroup(cgroupDir, datagrams);
    ++iterations;
  }
  Snapshot after1 = snapshot();
  // Counting programs called first.
  auto reattached = (*net)->reattachEmptyBaseline();
  Snapshot before2 = snapshot();
  for (int64_t i = 0; i < iterations && reattached; ++i) udpLoopbackInCgroup(cgroupDir, datagrams);
  Snapshot after2 = snapshot();
  cgroup.stopStats();
  auto counters = (*net)->read();
  net->reset();
  if (!reattached) {
    state.SkipWithError(reattached.error().message().c_str());
    return;
  }
  auto perEvent = [](ProgStats a, ProgStats b) {
    uint64_t n = b.runCount - a.runCount;
    return n ? static_cast<double>(b.runTimeNs - a.runTimeNs) / static_cast<double>(n) : 0.0;
  };
  auto ratio = [](double ours, double empty) { return empty > 0 ? ours / empty : 0.0; };
  const double emptyEgress1st = perEvent(before1.emptyEgress, after1.emptyEgress);
  const double emptyIngress1st = perEvent(before1.emptyIngress, after1.emptyIngress);
  const double egress2nd = perEvent(before1.egress, after1.egress);
  const double ingress2nd = perEvent(before1.ingress, after1.ingress);
  const double emptyEgress2nd = perEvent(before2.emptyEgress, after2.emptyEgress);
  const double emptyIngress2nd = perEvent(before2.emptyIngress, after2.emptyIngress);
  const double egress1st = perEvent(before2.egress, after2.egress);
  const double ingress1st = perEvent(before2.ingress, after2.ingress);
  // Names: <program>_<position> in ns per packet.
  state.counters["empty_egress_1st_ns"] = emptyEgress1st;
  state.counters["egress_1st_ns"] = egress1st;
  state.counters["empty_egress_2nd_ns"] = emptyEgress2nd;
  state.counters["egress_2nd_ns"] = egress2nd;
  state.counters["empty_ingress_1st_ns"] = emptyIngress1st;
  state.counters["ingress_1st_ns"] = ingress1st;
  state.counters["empty_ingress_2nd_ns"] = emptyIngress2nd;
  state.counters["ingress_2nd_ns"] = ingress2nd;
  state.counters["egress_vs_empty_1st"] = ratio(egress1st, emptyEgress1st);
  state.counters["egress_vs_empty_2nd"] = ratio(egress2nd, emptyEgress2nd);
  state.counters["ingress_vs_empty_1st"] = ratio(ingress1st, emptyIngress1st);
  state.counters["ingress_vs_empty_2nd"] = ratio(ingress2nd, emptyIngress2nd);
  // Packets the programs counted for the cgroup: shows the full path ran
  // (egress and ingress, both positions).
  uint64_t packets = 0;
  if (counters)
    for (const auto& [id, c] : *counters) packets += c.txPackets + c.rxPackets;
  state.counters["counted_packets"] = static_cast<double>(packets);
  state.counters["egress_events"] =
      static_cast<double>(after1.egress.runCount - before1.egress.runCount);
}
BENCHMARK(BM_NetProgramsPerPacketCost)
    ->ArgNames({"datagrams", "flows"})
    ->Args({10000, 1})
    ->Args({10000, 0})
    ->Iterations(3)
    ->Unit(benchmark::kMillisecond);

// 1,000 cgroups under <mount>/atoll-bench-<pid>, removed at exit.
class BenchCgroups {
 public:
  static constexpr int kCount = 1000;
  BenchCgroups() {
    mount_ = defaultCgroup2Mount();
    parent_ = "atoll-bench-" + std::to_string(::getpid());
    auto root = Dir::open(mount_);
    if (!root || !root->makeChild(parent_)) return;
    auto parent = root->openChild(parent_);
    if (!parent) return;
    for (int i = 0; i < kCount; ++i) {
      char name[32];
      std::snprintf(name, sizeof(name), "cg-%04d", i);
      if (!parent->makeChild(name)) return;
      auto child = parent->openChild(name);
      if (!child) return;
      auto reader = CgroupReader::open(*child, false);
      if (!reader) return;
      readers_.push_back(std::move(*reader));
    }
    ready_ = true;
  }
  ~BenchCgroups() {
    readers_.clear();
    auto root = Dir::open(mount_);
    if (!root) return;
    if (auto parent = root->openChild(parent_)) {
      for (int i = 0; i < kCount; ++i) {
        char name[32];
        std::snprintf(name, sizeof(name), "cg-%04d", i);
        (void)parent->removeChild(name);
      }
    }
    (void)root->removeChild(parent_);
  }
  bool ready() const { return ready_; }
  const std::string& mount() const { return mount_; }
  const std::string& parent() const { return parent_; }
  const std::vector<CgroupReader>& readers() const { return readers_; }

 private:
  std::string mount_;
  std::string parent_;
  std::vector<CgroupReader> readers_;
  bool ready_ = false;
};

BenchCgroups& cgroups() {
  static BenchCgroups instance;
  return instance;
}

void BM_ReadCpuStatKeptDescriptors(benchmark::State& state) {
  if (!cgroups().ready()) {
    state.SkipWithError("cannot create 1,000 cgroups (needs root and a cgroup2 mount)");
    return;
  }
  for (auto _ : state) {
    uint64_t total = 0;
    for (const CgroupReader& reader : cgroups().readers()) {
      auto stat = reader.readCpuStat();
      if (stat) total += stat->usageUsec;
    }
    benchmark::DoNotOptimize(total);
  }
  state.counters["cgroups"] = BenchCgroups::kCount;
}
BENCHMARK(BM_ReadCpuStatKeptDescriptors)->Unit(benchmark::kMillisecond)->MinTime(2.0);

void collectorTick(benchmark::State& state, int discoverEveryTicks, int slowSignalsEveryTicks) {
  if (!cgroups().ready()) {
    state.SkipWithError("cannot create 1,000 cgroups (needs root and a cgroup2 mount)");
    return;
  }
  CollectorOptions options;
  options.cgroupMount = cgroups().mount();
  options.selectors = {cgroups().parent() + "/*"};
  options.libvirtUri.clear();
  options.netSubtree = cgroups().parent();
  options.discoverEveryTicks = discoverEveryTicks;
  if (slowSignalsEveryTicks > 0) options.slowSignalsEveryTicks = slowSignalsEveryTicks;
  forecast::SampleRing ring(1 << 16);
  auto collector = Collector::start(options, &ring);
  if (!collector) {
    state.SkipWithError(collector.error().message().c_str());
    return;
  }
  size_t workloads = 0;
  (*collector)->tick();
  for (auto _ : state) {
    TickReport report = (*collector)->tick();
    workloads = report.workloads.size();
    state.PauseTiming();
    forecast::Sample sample;
    while (ring.tryPop(sample)) {
    }
    state.ResumeTiming();
  }
  state.counters["workloads"] = static_cast<double>(workloads);
}

// Default options (memory.stat and PSI every slowSignalsEveryTicks).
void BM_CollectorTick(benchmark::State& state) {
  collectorTick(state, 1 << 30, 0);
}
BENCHMARK(BM_CollectorTick)->Unit(benchmark::kMillisecond)->MinTime(2.0);

// Every control file of every cgroup on every tick.
void BM_CollectorTickAllFilesEveryTick(benchmark::State& state) {
  collectorTick(state, 1 << 30, 1);
}
BENCHMARK(BM_CollectorTickAllFilesEveryTick)->Unit(benchmark::kMillisecond)->MinTime(2.0);

void BM_CollectorTickWithDiscovery(benchmark::State& state) {
  collectorTick(state, 1, 0);
}
BENCHMARK(BM_CollectorTickWithDiscovery)->Unit(benchmark::kMillisecond)->MinTime(2.0);

}  // namespace

BENCHMARK_MAIN();
