// The self-metrics subsystem on the real /proc/self/stat of this process.
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <time.h>

#include <chrono>

#include "runtime/SelfMetricsSubsystem.h"

namespace Atoll {
namespace {

double counterValue(prometheus::Registry& registry, const std::string& name) {
  for (const auto& family : registry.Collect())
    if (family.name == name && !family.metric.empty()) return family.metric[0].counter.value;
  return -1;
}

TEST(SelfMetrics, SeesThisProcessSpendCpu) {
  prometheus::Registry registry;
  auto self = SelfMetricsSubsystem::create(registry);
  ASSERT_TRUE(self) << self.error().message();
  TickContext context;
  ASSERT_TRUE((*self)->runPhase(Phase::Collect, context));
  double before = (*self)->describe()["cpu_seconds"];

  // Burn 300 ms of CPU (not of wall time: the machine may be shared).
  auto cpuNow = [] {
    timespec ts{};
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
  };
  volatile uint64_t sink = 0;
  double start = cpuNow();
  auto giveUp = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (cpuNow() - start < 0.3 && std::chrono::steady_clock::now() < giveUp) sink = sink + 1;

  ASSERT_TRUE((*self)->runPhase(Phase::Collect, context));
  auto described = (*self)->describe();
  EXPECT_GE(described["cpu_seconds"].get<double>() - before, 0.25);  // 10 ms clock ticks
  EXPECT_GT(described["cpu_share_last_tick"].get<double>(), 0.05);
  EXPECT_GE(described["threads"].get<int>(), 1);
  EXPECT_GT(described["resident_bytes"].get<uint64_t>(), 1u << 20);
  EXPECT_GE(counterValue(registry, "atoll_daemon_cpu_seconds_total"), 0.2);
}

}  // namespace
}  // namespace Atoll
