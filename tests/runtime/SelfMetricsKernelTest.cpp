// The self-metrics subsystem on the real /proc/self/stat of this process.
#include <gtest/gtest.h>
#include <prometheus/registry.h>

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

  volatile uint64_t sink = 0;
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
  while (std::chrono::steady_clock::now() < until) sink = sink + 1;

  ASSERT_TRUE((*self)->runPhase(Phase::Collect, context));
  auto described = (*self)->describe();
  EXPECT_GE(described["cpu_seconds"].get<double>() - before, 0.2);
  EXPECT_GT(described["cpu_share_last_tick"].get<double>(), 0.5);
  EXPECT_GE(described["threads"].get<int>(), 1);
  EXPECT_GT(described["resident_bytes"].get<uint64_t>(), 1u << 20);
  EXPECT_GE(counterValue(registry, "atoll_daemon_cpu_seconds_total"), 0.2);
}

}  // namespace
}  // namespace Atoll
