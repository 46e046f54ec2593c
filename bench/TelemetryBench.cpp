// Telemetry costs (root):
//  - per-event cost of each scheduler program from the kernel's own BPF
//    statistics (run_time_ns / run_cnt, enabled with BPF_ENABLE_STATS for
//    the run), next to an empty tp_btf sched_switch program in the same run;
//  - collector cost per tick for 1,000 real cgroups under the cgroup2 mount,
//    next to just reading cpu.stat on kept descriptors of the same cgroups.
#include <benchmark/benchmark.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cstdio>
#include <thread>

#include "bpf/collector/CgroupReader.h"
#include "bpf/collector/Collector.h"
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

void BM_SchedProgramsPerEventCost(benchmark::State& state) {
  int statsFd = bpf_enable_stats(BPF_STATS_RUN_TIME);
  if (statsFd < 0) {
    state.SkipWithError("BPF_ENABLE_STATS failed (needs root and Linux 5.8)");
    return;
  }
  SchedTelemetryOptions options;
  options.withEmptyBaseline = true;
  auto sched = SchedTelemetry::start(options);
  if (!sched) {
    ::close(statsFd);
    state.SkipWithError(sched.error().message().c_str());
    return;
  }
  ProgStats switch0 = statsOf((*sched)->schedSwitchProgFd());
  ProgStats wakeup0 = statsOf((*sched)->wakeupProgFd());
  ProgStats empty0 = statsOf((*sched)->emptyProgFd());
  for (auto _ : state) pingPong(static_cast<int>(state.range(0)));
  ProgStats switch1 = statsOf((*sched)->schedSwitchProgFd());
  ProgStats wakeup1 = statsOf((*sched)->wakeupProgFd());
  ProgStats empty1 = statsOf((*sched)->emptyProgFd());
  ::close(statsFd);
  auto perEvent = [](ProgStats a, ProgStats b) {
    uint64_t n = b.runCount - a.runCount;
    return n ? static_cast<double>(b.runTimeNs - a.runTimeNs) / static_cast<double>(n) : 0.0;
  };
  double empty = perEvent(empty0, empty1);
  double sw = perEvent(switch0, switch1);
  double wake = perEvent(wakeup0, wakeup1);
  state.counters["empty_ns"] = empty;
  state.counters["sched_switch_ns"] = sw;
  state.counters["sched_wakeup_ns"] = wake;
  state.counters["switch_vs_empty"] = empty > 0 ? sw / empty : 0;
  state.counters["wakeup_vs_empty"] = empty > 0 ? wake / empty : 0;
  state.counters["switch_events"] = static_cast<double>(switch1.runCount - switch0.runCount);
}
BENCHMARK(BM_SchedProgramsPerEventCost)->Arg(5000)->Iterations(3)->Unit(benchmark::kMillisecond);

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

void collectorTick(benchmark::State& state, int discoverEveryTicks) {
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

void BM_CollectorTick(benchmark::State& state) {
  collectorTick(state, 1 << 30);
}
BENCHMARK(BM_CollectorTick)->Unit(benchmark::kMillisecond)->MinTime(2.0);

void BM_CollectorTickWithDiscovery(benchmark::State& state) {
  collectorTick(state, 1);
}
BENCHMARK(BM_CollectorTickWithDiscovery)->Unit(benchmark::kMillisecond)->MinTime(2.0);

}  // namespace

BENCHMARK_MAIN();
