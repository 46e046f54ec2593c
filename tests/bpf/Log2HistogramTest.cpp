#include "bpf/collector/Log2Histogram.h"

#include <gtest/gtest.h>

namespace Atoll::telemetry {
namespace {

TEST(Log2Histogram, SlotsMatchTheBpfProgram) {
  EXPECT_EQ(log2Slot(0), 0);
  EXPECT_EQ(log2Slot(1), 0);
  EXPECT_EQ(log2Slot(2), 1);
  EXPECT_EQ(log2Slot(3), 1);
  EXPECT_EQ(log2Slot(4), 2);
  EXPECT_EQ(log2Slot(1023), 9);
  EXPECT_EQ(log2Slot(1024), 10);
  EXPECT_EQ(log2Slot(~uint64_t{0}), kHistogramSlots - 1);
  for (int slot = 1; slot < kHistogramSlots - 1; ++slot) {
    EXPECT_EQ(log2Slot(slotLow(slot)), slot);
    EXPECT_EQ(log2Slot(slotHigh(slot) - 1), slot);
  }
}

TEST(Log2Histogram, QuantileInterpolatesInsideTheSlot) {
  Log2Histogram h{};
  h[log2Slot(100)] = 100;  // slot 6: [64, 128)
  EXPECT_DOUBLE_EQ(histogramQuantile(h, 0.5), 64 + 0.5 * 64);
  EXPECT_DOUBLE_EQ(histogramQuantile(h, 1.0), 128);
}

TEST(Log2Histogram, QuantileAcrossSlots) {
  Log2Histogram h{};
  h[3] = 90;   // [8, 16)
  h[10] = 10;  // [1024, 2048)
  double p50 = histogramQuantile(h, 0.50);
  EXPECT_GE(p50, 8);
  EXPECT_LT(p50, 16);
  double p99 = histogramQuantile(h, 0.99);
  EXPECT_GE(p99, 1024);
  EXPECT_LE(p99, 2048);
  EXPECT_EQ(totalCount(h), 100u);
}

TEST(Log2Histogram, EmptyHistogramHasZeroQuantile) {
  Log2Histogram h{};
  EXPECT_EQ(histogramQuantile(h, 0.99), 0);
}

TEST(Log2Histogram, DeltaOfCumulativeHistograms) {
  Log2Histogram earlier{}, later{};
  earlier[2] = 5;
  later[2] = 8;
  later[4] = 1;
  Log2Histogram d = histogramDelta(later, earlier);
  EXPECT_EQ(d[2], 3u);
  EXPECT_EQ(d[4], 1u);
  // A recreated map entry restarts below the old count: the new count stands.
  earlier[4] = 10;
  EXPECT_EQ(histogramDelta(later, earlier)[4], 1u);
}

}  // namespace
}  // namespace Atoll::telemetry
