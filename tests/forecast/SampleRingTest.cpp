#include "forecast/SampleRing.h"

#include <gtest/gtest.h>

#include <vector>

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

TEST(SampleRing, BatchPushTakesWhatFitsAndDrainReleasesCells) {
  SampleRing ring(8);
  std::vector<Sample> batch;
  for (uint32_t i = 0; i < 5; ++i) batch.push_back(sampleWith(i, i));
  EXPECT_EQ(ring.tryPushBatch(batch), 5u);
  // Three cells left: the first three of the next batch go in, the rest are
  // counted as dropped.
  for (auto& sample : batch) sample.key.workload += 10;
  EXPECT_EQ(ring.tryPushBatch(batch), 3u);
  EXPECT_EQ(ring.pushed(), 8u);
  EXPECT_EQ(ring.dropped(), 2u);
  EXPECT_EQ(ring.tryPushBatch(batch), 0u);
  EXPECT_EQ(ring.dropped(), 7u);

  std::vector<uint32_t> seen;
  auto record = [&](const Sample& s) { seen.push_back(s.key.workload); };
  EXPECT_EQ(ring.drain(6, record), 6u);
  EXPECT_EQ(seen, (std::vector<uint32_t>{0, 1, 2, 3, 4, 10}));
  // The drained cells are free again, wrapping around the array.
  EXPECT_EQ(ring.tryPushBatch(batch), 5u);
  seen.clear();
  EXPECT_EQ(ring.drain(100, record), 7u);
  EXPECT_EQ(seen, (std::vector<uint32_t>{11, 12, 10, 11, 12, 13, 14}));
  EXPECT_EQ(ring.drain(100, record), 0u);
  EXPECT_EQ(ring.tryPushBatch({}), 0u);
}

TEST(SampleRing, BatchPushAndDrainRunAcrossTheArrayEnd) {
  SampleRing ring(8);
  std::vector<uint32_t> seen;
  auto record = [&](const Sample& s) { seen.push_back(s.key.workload); };
  std::vector<Sample> batch;
  for (uint32_t i = 0; i < 6; ++i) batch.push_back(sampleWith(i, i));
  ASSERT_EQ(ring.tryPushBatch(batch), 6u);
  ASSERT_EQ(ring.drain(6, record), 6u);
  // Positions 6-13: cells 6, 7, then 0-5.
  batch.clear();
  for (uint32_t i = 0; i < 8; ++i) batch.push_back(sampleWith(100 + i, i));
  EXPECT_EQ(ring.tryPushBatch(batch), 8u);
  EXPECT_EQ(ring.dropped(), 0u);
  seen.clear();
  // Stops within a run (max), then takes the rest across the end.
  EXPECT_EQ(ring.drain(1, record), 1u);
  EXPECT_EQ(ring.drain(100, record), 7u);
  EXPECT_EQ(seen, (std::vector<uint32_t>{100, 101, 102, 103, 104, 105, 106, 107}));
  // A batch whose free run, past the end of the array, ends at a cell that
  // is still held.
  batch.resize(4);
  ASSERT_EQ(ring.tryPushBatch(batch), 4u);  // positions 14-17: cells 6, 7, 0, 1
  seen.clear();
  ASSERT_EQ(ring.drain(2, record), 2u);  // frees cells 6, 7
  batch.resize(8);
  EXPECT_EQ(ring.tryPushBatch(batch), 6u) << "cells 2-7 free, 0 and 1 still held";
  EXPECT_EQ(ring.dropped(), 2u);
  EXPECT_EQ(ring.drain(100, record), 8u);
  EXPECT_EQ(seen.size(), 10u);
}

}  // namespace
}  // namespace Atoll::forecast
