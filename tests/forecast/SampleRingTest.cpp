#include "forecast/SampleRing.h"

#include <gtest/gtest.h>

namespace Atoll::forecast {
namespace {

Sample sampleWith(uint32_t workload, double value) {
  return Sample{SeriesKey{workload, Metric::Cpu}, int64_t(workload), value};
}

TEST(SampleRing, DeliversInOrder) {
  SampleRing ring(8);
  for (uint32_t i = 0; i < 5; ++i) ASSERT_TRUE(ring.tryPush(sampleWith(i, i * 1.5)));
  Sample out;
  for (uint32_t i = 0; i < 5; ++i) {
    ASSERT_TRUE(ring.tryPop(out));
    EXPECT_EQ(out.key.workload, i);
    EXPECT_DOUBLE_EQ(out.value, i * 1.5);
  }
  EXPECT_FALSE(ring.tryPop(out));
}

TEST(SampleRing, FullRingCountsDropsAndKeepsContents) {
  SampleRing ring(5);  // rounded up to 8
  EXPECT_EQ(ring.capacity(), 8u);
  for (uint32_t i = 0; i < 8; ++i) ASSERT_TRUE(ring.tryPush(sampleWith(i, i)));
  for (uint32_t i = 0; i < 3; ++i) EXPECT_FALSE(ring.tryPush(sampleWith(100 + i, 0)));
  EXPECT_EQ(ring.dropped(), 3u);
  EXPECT_EQ(ring.pushed(), 8u);
  Sample out;
  for (uint32_t i = 0; i < 8; ++i) {
    ASSERT_TRUE(ring.tryPop(out));
    EXPECT_EQ(out.key.workload, i);
  }
  // Space again after draining, wrapping around the array.
  for (uint32_t i = 0; i < 8; ++i) ASSERT_TRUE(ring.tryPush(sampleWith(50 + i, 0)));
  ASSERT_TRUE(ring.tryPop(out));
  EXPECT_EQ(out.key.workload, 50u);
}

}  // namespace
}  // namespace Atoll::forecast
