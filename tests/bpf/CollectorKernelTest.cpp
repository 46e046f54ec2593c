// The collector end to end on the real kernel: a selector-matched cgroup
// becomes a workload with CPU samples in the forecaster's ring; removing it
// and creating a new one under the same name ends the old series and starts
// a new workload.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <optional>
#include <set>

#include "TestCgroup.h"
#include "bpf/collector/Collector.h"

namespace Atoll::telemetry {
namespace {

// A collector over the test cgroups matching `selector` only: no libvirt, no
// network programs.
CollectorOptions testOptions(const testing::Cgroup2Access& access, const char* selector) {
  CollectorOptions options;
  options.cgroupMount = access.mount;
  options.selectors = {selector};
  options.libvirtUri.clear();
  options.netProbe = false;
  return options;
}

TEST(Collector, CgroupRecreatedUnderTheSameNameIsANewWorkload) {
  auto access = testing::cgroup2ForTests();
  if (!access.skipReason.empty()) GTEST_SKIP() << access.skipReason;
  forecast::SampleRing ring(1024);
  CollectorOptions options = testOptions(access, "atoll-test-coll-*");
  options.slowSignalsEveryTicks = 1;  // cpu.stat cross-check on every tick
  auto collector = Collector::start(options, &ring);
  ASSERT_TRUE(collector) << collector.error().message();

  uint32_t firstNumber = 0;
  {
    auto cgroup = testing::TestCgroup::create(access.mount, "atoll-test-coll-vm");
    ASSERT_TRUE(cgroup) << cgroup.error().message();
    TickReport born = (*collector)->tick();
    ASSERT_EQ(born.born.size(), 1u);
    firstNumber = born.born[0].number;
    EXPECT_EQ(born.born[0].cgroup.cgroupId, cgroup->id());

    cgroup->fork([] {
      testing::spinFor(0.2);
      return 0;
    });
    cgroup->start();
    cgroup->waitExitedNoReap();
    cgroup->reap();
    TickReport busy = (*collector)->tick();
    ASSERT_EQ(busy.workloads.size(), 1u);
    const WorkloadSnapshot& snap = busy.workloads[0];
    EXPECT_EQ(snap.workload.number, firstNumber);
    if (snap.cpuCores) {
      // 0.2 s of CPU inside the interval.
      EXPECT_GT(*snap.cpuCores * snap.intervalSeconds, 0.15);
    }
    ASSERT_TRUE(snap.cgroupCpuCores);
    EXPECT_GT(*snap.cgroupCpuCores * snap.intervalSeconds, 0.15);
    EXPECT_GE(busy.samplesPushed, 1u);
  }  // removed here

  auto again = testing::TestCgroup::create(access.mount, "atoll-test-coll-vm");
  ASSERT_TRUE(again) << again.error().message();
  // The kept descriptors of the removed cgroup fail on this tick or the
  // discovery already sees a different cgroup id; either way within two.
  std::set<uint32_t> ended, born;
  for (int i = 0; i < 2; ++i) {
    TickReport report = (*collector)->tick();
    for (const Workload& w : report.ended) ended.insert(w.number);
    for (const Workload& w : report.born) born.insert(w.number);
  }
  EXPECT_TRUE(ended.count(firstNumber));
  ASSERT_EQ(born.size(), 1u);
  EXPECT_NE(*born.begin(), firstNumber);
  EXPECT_EQ((*collector)->registry().byCgroupId(again->id())->number, *born.begin());

  std::set<uint32_t> seriesInRing;
  forecast::Sample sample;
  while (ring.tryPop(sample)) seriesInRing.insert(sample.key.workload);
  EXPECT_TRUE(seriesInRing.count(firstNumber));
}

// A child cgroup leaving a workload's subtree takes its counters out of the
// workload's sum; the tick after must not take the smaller sum for counters
// that restarted and report everything the other cgroups ever ran as new.
TEST(Collector, AChildCgroupLeavingTheSubtreeIsNoBurstOfCpuTime) {
  auto access = testing::cgroup2ForTests();
  if (!access.skipReason.empty()) GTEST_SKIP() << access.skipReason;
  CollectorOptions options = testOptions(access, "atoll-test-subtree-*");
  options.blockProbe = false;
  auto collector = Collector::start(options, nullptr);
  ASSERT_TRUE(collector) << collector.error().message();
  for (const std::string& line : (*collector)->degraded())
    if (line.rfind("cpu time", 0) == 0) GTEST_SKIP() << "scheduler programs not loaded: " << line;
  auto vm = testing::TestCgroup::create(access.mount, "atoll-test-subtree-vm");
  ASSERT_TRUE(vm) << vm.error().message();
  auto kept = testing::TestCgroup::create(vm->path(), "kept");
  ASSERT_TRUE(kept) << kept.error().message();
  std::optional<testing::TestCgroup> leaving;
  {
    auto made = testing::TestCgroup::create(vm->path(), "leaving");
    ASSERT_TRUE(made) << made.error().message();
    leaving.emplace(std::move(*made));
  }
  TickReport born = (*collector)->tick();
  ASSERT_EQ(born.born.size(), 1u);

  auto spin = [](testing::TestCgroup& cgroup, double seconds) {
    cgroup.fork([seconds] {
      testing::spinFor(seconds);
      return 0;
    });
    cgroup.start();
    cgroup.waitExitedNoReap();
    cgroup.reap();
  };
  spin(*kept, 0.3);
  spin(*leaving, 0.1);
  TickReport busy = (*collector)->tick();
  ASSERT_EQ(busy.workloads.size(), 1u);
  ASSERT_TRUE(busy.workloads[0].cpuCores);
  EXPECT_GT(*busy.workloads[0].cpuCores * busy.workloads[0].intervalSeconds, 0.3);

  leaving.reset();  // removed: the next discovery drops it from the subtree
  TickReport idle = (*collector)->tick();
  ASSERT_EQ(idle.workloads.size(), 1u);
  ASSERT_TRUE(idle.workloads[0].cpuCores);
  // Nothing ran since the last tick.
  EXPECT_LT(*idle.workloads[0].cpuCores * idle.workloads[0].intervalSeconds, 0.05);
}

// A tick's samples go to the ring in one batch: what fits is pushed, the
// rest is counted as dropped by the tick and by the ring alike, and nothing
// is half-written.
TEST(Collector, ATickThatOverflowsTheRingCountsWhatDidNotFit) {
  auto access = testing::cgroup2ForTests();
  if (!access.skipReason.empty()) GTEST_SKIP() << access.skipReason;
  forecast::SampleRing ring(2);
  CollectorOptions options = testOptions(access, "atoll-test-overflow-*");
  options.slowSignalsEveryTicks = 1;
  auto collector = Collector::start(options, &ring);
  ASSERT_TRUE(collector) << collector.error().message();
  std::vector<testing::TestCgroup> cgroups;
  for (const char* name :
       {"atoll-test-overflow-a", "atoll-test-overflow-b", "atoll-test-overflow-c"}) {
    auto cgroup = testing::TestCgroup::create(access.mount, name);
    ASSERT_TRUE(cgroup) << cgroup.error().message();
    cgroups.push_back(std::move(*cgroup));
  }
  uint64_t pushed = 0, dropped = 0;
  for (int i = 0; i < 3; ++i) {
    TickReport report = (*collector)->tick();
    pushed += report.samplesPushed;
    dropped += report.samplesDropped;
  }
  // Three workloads with (at least) a CPU sample each on every tick after
  // the first: the ring takes two in all.
  EXPECT_EQ(pushed, 2u);
  EXPECT_GE(dropped, 4u);
  EXPECT_EQ(ring.pushed(), pushed);
  EXPECT_EQ(ring.dropped(), dropped);
  forecast::Sample sample;
  int inRing = 0;
  while (ring.tryPop(sample)) ++inRing;
  EXPECT_EQ(inRing, 2);
}

// Islands appearing while running: the scheduler programs are reloaded with
// island clocks, the workload keeps its number and keeps being measured, and
// the cross-island wait is no longer listed as off.
TEST(Collector, CrossIslandWaitTurnsOnWhileRunningAndWorkloadsCarryOn) {
  auto access = testing::cgroup2ForTests();
  if (!access.skipReason.empty()) GTEST_SKIP() << access.skipReason;
  CollectorOptions options = testOptions(access, "atoll-test-isl-*");
  options.blockProbe = false;
  auto collector = Collector::start(options, nullptr);
  ASSERT_TRUE(collector) << collector.error().message();
  for (const std::string& line : (*collector)->degraded())
    if (line.rfind("cpu time", 0) == 0) GTEST_SKIP() << "scheduler programs not loaded: " << line;
  auto offLine = [&] {
    for (const std::string& line : (*collector)->degraded())
      if (line.rfind("cross-island wait", 0) == 0) return true;
    return false;
  };
  EXPECT_FALSE((*collector)->tracksIslands());
  EXPECT_TRUE(offLine());
  auto cgroup = testing::TestCgroup::create(access.mount, "atoll-test-isl-vm");
  ASSERT_TRUE(cgroup) << cgroup.error().message();
  TickReport born = (*collector)->tick();
  ASSERT_EQ(born.born.size(), 1u);
  const uint32_t number = born.born[0].number;

  auto on = (*collector)->setTrackIslands(true);
  ASSERT_TRUE(on) << on.error().message();
  EXPECT_TRUE((*collector)->tracksIslands());
  EXPECT_FALSE(offLine());
  ASSERT_TRUE((*collector)->setIsland(number, 3));
  cgroup->fork([] {
    testing::spinFor(0.1);
    return 0;
  });
  cgroup->start();
  cgroup->waitExitedNoReap();
  cgroup->reap();
  TickReport after = (*collector)->tick();
  EXPECT_TRUE(after.born.empty());
  ASSERT_EQ(after.workloads.size(), 1u);
  EXPECT_EQ(after.workloads[0].workload.number, number);
  ASSERT_TRUE(after.workloads[0].cpuCores);
  EXPECT_GT(*after.workloads[0].cpuCores * after.workloads[0].intervalSeconds, 0.07);
  EXPECT_TRUE(after.workloads[0].crossIslandWaitPerSecond);

  ASSERT_TRUE((*collector)->setTrackIslands(false));
  EXPECT_FALSE((*collector)->tracksIslands());
  EXPECT_TRUE(offLine());
}

}  // namespace
}  // namespace Atoll::telemetry
