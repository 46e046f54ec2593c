// Accuracy of the scheduler program on the real kernel: on-CPU time against
// the kernel's cpu.stat usage_usec, run-queue wait against the threads' own
// /proc/PID/schedstat run_delay.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <map>

#include "TestCgroup.h"
#include "bpf/collector/CgroupReader.h"
#include "bpf/loaders/SchedTelemetry.h"

namespace Atoll::telemetry {
namespace {

using testing::TestCgroup;

std::unique_ptr<SchedTelemetry> startOrSkip(std::string& skip) {
  auto access = testing::cgroup2ForTests();
  if (!access.skipReason.empty()) {
    skip = access.skipReason;
    return nullptr;
  }
  if (::access("/sys/kernel/btf/vmlinux", R_OK) != 0) {
    skip = "kernel has no BTF (/sys/kernel/btf/vmlinux): CO-RE programs cannot load";
    return nullptr;
  }
  auto sched = SchedTelemetry::start({});
  if (!sched) {
    ADD_FAILURE() << "BTF present but the scheduler program failed: " << sched.error().message();
    return nullptr;
  }
  return std::move(*sched);
}

SchedCounters countersOf(const SchedTelemetry& sched, uint64_t cgroupId) {
  auto all = sched.read();
  EXPECT_TRUE(all) << all.error().message();
  if (!all) return {};
  auto it = all->find(cgroupId);
  return it == all->end() ? SchedCounters{} : it->second;
}

// run_delay (ns) of a process: the second field of /proc/PID/schedstat.
uint64_t runDelayNs(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/schedstat");
  uint64_t onCpu = 0, runDelay = 0;
  in >> onCpu >> runDelay;
  return runDelay;
}

TEST(SchedAccuracy, OnCpuTimeMatchesCpuStatWithinTwoPercent) {
  std::string skip;
  auto sched = startOrSkip(skip);
  if (!sched) GTEST_SKIP() << skip;
  auto cgroup = TestCgroup::create(testing::cgroup2ForTests().mount, "atoll-test-cpu");
  ASSERT_TRUE(cgroup) << cgroup.error().message();
  auto reader = CgroupReader::open(cgroup->dir());
  ASSERT_TRUE(reader) << reader.error().message();

  const long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  for (long i = 0; i < cpus; ++i) {
    ASSERT_GT(cgroup->fork([] {
      testing::spinFor(0.4);
      return 0;
    }),
              0);
  }
  SchedCounters before = countersOf(*sched, cgroup->id());
  auto statBefore = reader->readCpuStat();
  ASSERT_TRUE(statBefore) << statBefore.error().message();
  cgroup->start();
  cgroup->waitExitedNoReap();
  cgroup->reap();
  SchedCounters after = countersOf(*sched, cgroup->id());
  auto statAfter = reader->readCpuStat();
  ASSERT_TRUE(statAfter) << statAfter.error().message();

  const double bpfSeconds = static_cast<double>(after.oncpuNs - before.oncpuNs) / 1e9;
  const double kernelSeconds =
      static_cast<double>(statAfter->usageUsec - statBefore->usageUsec) / 1e6;
  RecordProperty("bpf_seconds", std::to_string(bpfSeconds));
  RecordProperty("cpu_stat_seconds", std::to_string(kernelSeconds));
  ASSERT_GT(kernelSeconds, 0.3 * static_cast<double>(cpus));
  EXPECT_NEAR(bpfSeconds, kernelSeconds, 0.02 * kernelSeconds)
      << "BPF " << bpfSeconds << " s vs cpu.stat " << kernelSeconds << " s";
  EXPECT_GT(after.switches, before.switches);
}

struct WaitComparison {
  double bpfSeconds = 0;
  double schedstatSeconds = 0;
  double runSeconds = 0;
};

WaitComparison measureWait(SchedTelemetry& sched, int threads, double spinSeconds) {
  WaitComparison result;
  auto cgroup = TestCgroup::create(testing::cgroup2ForTests().mount, "atoll-test-runq");
  EXPECT_TRUE(cgroup) << cgroup.error().message();
  if (!cgroup) return result;
  for (int i = 0; i < threads; ++i) {
    EXPECT_GT(cgroup->fork([spinSeconds] {
      testing::spinFor(spinSeconds);
      return 0;
    }),
              0);
  }
  std::map<pid_t, uint64_t> delayBefore;
  for (pid_t pid : cgroup->workers()) delayBefore[pid] = runDelayNs(pid);
  SchedCounters before = countersOf(sched, cgroup->id());
  cgroup->start();
  cgroup->waitExitedNoReap();
  uint64_t schedstatWait = 0;
  for (pid_t pid : cgroup->workers()) schedstatWait += runDelayNs(pid) - delayBefore[pid];
  cgroup->reap();
  SchedCounters after = countersOf(sched, cgroup->id());
  result.bpfSeconds = static_cast<double>(after.runqWaitNs - before.runqWaitNs) / 1e9;
  result.schedstatSeconds = static_cast<double>(schedstatWait) / 1e9;
  result.runSeconds = static_cast<double>(after.oncpuNs - before.oncpuNs) / 1e9;
  return result;
}

TEST(SchedAccuracy, RunQueueWaitMatchesSchedstatWithinTenPercent) {
  std::string skip;
  auto sched = startOrSkip(skip);
  if (!sched) GTEST_SKIP() << skip;
  const int cpus = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
  WaitComparison wait = measureWait(*sched, 2 * cpus + 1, 0.25);
  RecordProperty("bpf_wait_seconds", std::to_string(wait.bpfSeconds));
  RecordProperty("schedstat_wait_seconds", std::to_string(wait.schedstatSeconds));
  // Oversubscribed: each thread waits a good share of the time.
  ASSERT_GT(wait.schedstatSeconds, 0.1);
  EXPECT_NEAR(wait.bpfSeconds, wait.schedstatSeconds, 0.10 * wait.schedstatSeconds)
      << "BPF " << wait.bpfSeconds << " s vs schedstat " << wait.schedstatSeconds << " s";
}

double loadAverage() {
  std::ifstream in("/proc/loadavg");
  double one = 0;
  in >> one;
  return one;
}

TEST(SchedAccuracy, RunQueueWaitNearZeroWhenThreadsFitCpus) {
  std::string skip;
  auto sched = startOrSkip(skip);
  if (!sched) GTEST_SKIP() << skip;
  const int cpus = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
  if (loadAverage() > 0.5 * cpus)
    GTEST_SKIP() << "host load average " << loadAverage() << " on " << cpus
                 << " CPUs: other work keeps the run queue busy, near-zero wait is unobservable";
  WaitComparison wait = measureWait(*sched, 1, 0.25);
  EXPECT_LT(wait.bpfSeconds, 0.05 * wait.runSeconds);
  EXPECT_NEAR(wait.bpfSeconds, wait.schedstatSeconds,
              std::max(0.10 * wait.schedstatSeconds, 0.002));
}

TEST(SchedAccuracy, FullCgroupMapIsCountedNotSilent) {
  std::string skip;
  auto probe = startOrSkip(skip);
  if (!probe) GTEST_SKIP() << skip;
  probe.reset();
  // Room for a single cgroup: the host's own activity fills it at once, so
  // the test cgroup's events must show up as lost, never as zeros.
  SchedTelemetryOptions options;
  options.maxCgroups = 1;
  auto sched = SchedTelemetry::start(options);
  ASSERT_TRUE(sched) << sched.error().message();
  auto cgroup = TestCgroup::create(testing::cgroup2ForTests().mount, "atoll-test-full");
  ASSERT_TRUE(cgroup) << cgroup.error().message();
  ASSERT_GT(cgroup->fork([] {
    for (int i = 0; i < 20; ++i) ::usleep(1000);
    return 0;
  }),
            0);
  cgroup->start();
  cgroup->waitExitedNoReap();
  cgroup->reap();
  auto all = (*sched)->read();
  ASSERT_TRUE(all) << all.error().message();
  EXPECT_LE(all->size(), 1u);
  auto errors = (*sched)->errors();
  ASSERT_TRUE(errors) << errors.error().message();
  EXPECT_GT(errors->mapFull, 0u);
}

}  // namespace
}  // namespace Atoll::telemetry
