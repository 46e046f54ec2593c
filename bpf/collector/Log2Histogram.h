#pragma once
// Log2 latency histograms as the scheduler program fills them: slot i counts
// values in [2^i, 2^(i+1)) units, slot 0 also counts values under one unit.
// Percentiles are estimated by linear interpolation inside the slot that
// holds the rank, so the error is bounded by the slot's width.
#include <array>
#include <cstdint>

namespace Atoll::telemetry {

inline constexpr int kHistogramSlots = 32;
using Log2Histogram = std::array<uint64_t, kHistogramSlots>;

// Slot of a value, as the BPF program computes it.
int log2Slot(uint64_t value);
// Lower and upper bounds of a slot, in units.
uint64_t slotLow(int slot);
uint64_t slotHigh(int slot);

uint64_t totalCount(const Log2Histogram& histogram);
// Element-wise later - earlier; a slot that went backwards (map entry
// recreated) yields later's value, not a wrapped difference.
Log2Histogram histogramDelta(const Log2Histogram& later, const Log2Histogram& earlier);
// The q-quantile (0 < q <= 1) in units; 0 for an empty histogram.
double histogramQuantile(const Log2Histogram& histogram, double q);

}  // namespace Atoll::telemetry
