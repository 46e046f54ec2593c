// The isolation benchmark's arithmetic and island layout, without running
// it: nearest-rank percentiles, and where the probe, the noisy neighbour
// and the shared island go on recorded topologies.
#include "numa/IsolationBench.h"

#include <gtest/gtest.h>

#include "numa/CpuSet.h"
#include "tests/numa/islands/Fixtures.h"

namespace Atoll::numa {
namespace {

TEST(IsolationBenchTest, NearestRankPercentiles) {
  std::vector<double> samples;
  for (int i = 100; i >= 1; --i) samples.push_back(double(i));
  auto summary = summarizeLatencies(samples);
  EXPECT_EQ(summary.samples, 100u);
  EXPECT_DOUBLE_EQ(summary.p50Us, 50.0);
  EXPECT_DOUBLE_EQ(summary.p99Us, 99.0);
  EXPECT_DOUBLE_EQ(summary.maxUs, 100.0);
  auto one = summarizeLatencies({7.5});
  EXPECT_DOUBLE_EQ(one.p50Us, 7.5);
  EXPECT_DOUBLE_EQ(one.p99Us, 7.5);
  EXPECT_EQ(summarizeLatencies({}).samples, 0u);
}

TEST(IsolationBenchTest, LayoutKeepsWholeCoresAndASharedCore) {
  const Topology topology = testing::loadFixture("two-socket.xml");
  auto layout = isolationLayout(topology);
  ASSERT_TRUE(layout) << layout.error().message();
  EXPECT_EQ(layout->probe, topology.cores().back().cpus);
  EXPECT_EQ(layout->shared, topology.cores().front().cpus);
  EXPECT_TRUE(intersectionOf(layout->noisy, layout->probe).empty());
  EXPECT_TRUE(intersectionOf(layout->noisy, layout->shared).empty());
  EXPECT_EQ(unionOf(unionOf(layout->noisy, layout->probe), layout->shared), topology.cpus());
}

TEST(IsolationBenchTest, OneCoreIsNotEnough) {
  const Topology topology = testing::loadFixture("one-node.xml");
  auto layout = isolationLayout(topology);
  if (topology.cores().size() >= 2) {
    ASSERT_TRUE(layout);
    EXPECT_FALSE(layout->probe.empty());
    EXPECT_FALSE(layout->noisy.empty());
  } else {
    ASSERT_FALSE(layout);
    EXPECT_NE(layout.error().message().find("two cores"), std::string::npos);
  }
}

}  // namespace
}  // namespace Atoll::numa
