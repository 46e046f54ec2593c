#include "forecast/SampleRing.h"

#include <algorithm>
#include <bit>

namespace Atoll::forecast {

const char* metricName(Metric metric) {
  switch (metric) {
    case Metric::Cpu:
      return "cpu";
    case Metric::Memory:
      return "memory";
    case Metric::Io:
      return "io";
    case Metric::Network:
      return "network";
  }
  return "unknown";
}

SampleRing::SampleRing(size_t capacity)
    : cells_(std::make_unique<Cell[]>(std::bit_ceil(capacity < 2 ? size_t{2} : capacity))),
      mask_(std::bit_ceil(capacity < 2 ? size_t{2} : capacity) - 1) {
  for (size_t i = 0; i <= mask_; ++i) cells_[i].sequence.store(i, std::memory_order_relaxed);
}

bool SampleRing::tryPush(const Sample& sample) noexcept {
  uint64_t pos = enqueuePos_.load(std::memory_order_relaxed);
  for (;;) {
    Cell& cell = cells_[pos & mask_];
    uint64_t seq = cell.sequence.load(std::memory_order_acquire);
    auto diff = static_cast<int64_t>(seq - pos);
    if (diff == 0) {
      if (enqueuePos_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
        cell.sample = sample;
        cell.sequence.store(pos + 1, std::memory_order_release);
        return true;
      }
    } else if (diff < 0) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return false;
    } else {
      pos = enqueuePos_.load(std::memory_order_relaxed);
    }
  }
}

// How many cells from `pos` on (at most limit <= capacity) are free for the
// lap of `pos`: in at most two runs of adjacent cells, so that no index is
// masked per cell.
size_t SampleRing::freeRun(Cell* cells, size_t mask, uint64_t pos, size_t limit) noexcept {
  size_t free = 0;
  while (free < limit) {
    const Cell* cell = cells + ((pos + free) & mask);
    const size_t run = std::min(limit - free, mask + 1 - ((pos + free) & mask));
    for (size_t i = 0; i < run; ++i, ++cell)
      if (cell->sequence.load(std::memory_order_acquire) != pos + free + i) return free + i;
    free += run;
  }
  return free;
}

size_t SampleRing::tryPushBatch(std::span<const Sample> samples) noexcept {
  if (samples.empty()) return 0;
  // Locals: the compiler would reload members after every acquire load.
  Cell* const cells = cells_.get();
  const size_t mask = mask_;
  const size_t limit = std::min(samples.size(), mask + 1);
  uint64_t pos = enqueuePos_.load(std::memory_order_relaxed);
  size_t free = 0;
  for (;;) {
    // Cells only become free from a producer's point of view (another
    // producer can take them only by moving enqueuePos_, which fails the
    // claim below), so the free run counted here is still free once claimed.
    free = freeRun(cells, mask, pos, limit);
    if (free == 0) {
      if (static_cast<int64_t>(cells[pos & mask].sequence.load(std::memory_order_acquire) - pos) <
          0)
        break;  // full
      pos = enqueuePos_.load(std::memory_order_relaxed);
      continue;
    }
    if (enqueuePos_.compare_exchange_weak(pos, pos + free, std::memory_order_relaxed)) break;
  }
  // In runs of adjacent cells, as freeRun.
  for (size_t done = 0; done < free;) {
    Cell* cell = cells + ((pos + done) & mask);
    const size_t run = std::min(free - done, mask + 1 - ((pos + done) & mask));
    for (size_t i = 0; i < run; ++i, ++cell) {
      cell->sample = samples[done + i];
      cell->sequence.store(pos + done + i + 1, std::memory_order_release);
    }
    done += run;
  }
  if (free < samples.size()) dropped_.fetch_add(samples.size() - free, std::memory_order_relaxed);
  return free;
}

bool SampleRing::tryPop(Sample& out) noexcept {
  uint64_t pos = dequeuePos_.load(std::memory_order_relaxed);
  for (;;) {
    Cell& cell = cells_[pos & mask_];
    uint64_t seq = cell.sequence.load(std::memory_order_acquire);
    auto diff = static_cast<int64_t>(seq - (pos + 1));
    if (diff == 0) {
      if (dequeuePos_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
        out = cell.sample;
        cell.sequence.store(pos + mask_ + 1, std::memory_order_release);
        return true;
      }
    } else if (diff < 0) {
      return false;
    } else {
      pos = dequeuePos_.load(std::memory_order_relaxed);
    }
  }
}

}  // namespace Atoll::forecast
