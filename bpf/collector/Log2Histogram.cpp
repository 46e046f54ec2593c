#include "bpf/collector/Log2Histogram.h"

#include <algorithm>
#include <cmath>

namespace Atoll::telemetry {

int log2Slot(uint64_t value) {
  int slot = 0;
  while (value >= 2 && slot < kHistogramSlots - 1) {
    value >>= 1;
    ++slot;
  }
  return slot;
}

uint64_t slotLow(int slot) {
  return slot == 0 ? 0 : uint64_t{1} << slot;
}
uint64_t slotHigh(int slot) {
  return uint64_t{1} << (slot + 1);
}

uint64_t totalCount(const Log2Histogram& histogram) {
  uint64_t total = 0;
  for (uint64_t count : histogram) total += count;
  return total;
}

Log2Histogram histogramDelta(const Log2Histogram& later, const Log2Histogram& earlier) {
  Log2Histogram delta{};
  for (int i = 0; i < kHistogramSlots; ++i)
    delta[i] = later[i] >= earlier[i] ? later[i] - earlier[i] : later[i];
  return delta;
}

double histogramQuantile(const Log2Histogram& histogram, double q) {
  uint64_t total = totalCount(histogram);
  if (total == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  // Rank of the wanted value among 1..total.
  double rank = std::max(1.0, std::ceil(q * static_cast<double>(total)));
  uint64_t below = 0;
  for (int slot = 0; slot < kHistogramSlots; ++slot) {
    uint64_t count = histogram[slot];
    if (count == 0) continue;
    if (static_cast<double>(below + count) >= rank) {
      double fraction = (rank - static_cast<double>(below)) / static_cast<double>(count);
      double low = static_cast<double>(slotLow(slot));
      double high = static_cast<double>(slotHigh(slot));
      return low + fraction * (high - low);
    }
    below += count;
  }
  return static_cast<double>(slotHigh(kHistogramSlots - 1));
}

}  // namespace Atoll::telemetry
