#pragma once
// Bounded lock-free ring (Vyukov's array queue) carrying samples from any
// number of producers to the forecaster thread. A producer never waits: when
// the ring is full the sample is counted as dropped and the call returns.
// Each cell's sequence number hands the cell over with acquire/release, so the
// payload itself needs no atomics.
//
// Cost per sample is what the daemon pays at the raw (1-s) grain, so the
// common paths take at most one locked instruction: a push claims its cell
// with one compare-and-swap (a batch push claims a run of cells with one),
// the successful-push count is the enqueue position itself, and the single
// consumer drains a run of cells with plain loads and stores.
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "forecast/Sample.h"

namespace Atoll::forecast {

class SampleRing {
 public:
  // capacity is rounded up to a power of two (at least 2).
  explicit SampleRing(size_t capacity);
  SampleRing(const SampleRing&) = delete;
  SampleRing& operator=(const SampleRing&) = delete;

  // Any thread. False (and one more drop counted) when the ring is full.
  bool tryPush(const Sample& sample) noexcept;
  // Any thread. Pushes the longest prefix of samples that fits with one
  // claim of the ring and returns its length; the rest are counted as
  // dropped.
  size_t tryPushBatch(std::span<const Sample> samples) noexcept;
  // Any thread, for rings with several consumers.
  bool tryPop(Sample& out) noexcept;
  // Single consumer only (the forecaster thread), never concurrently with
  // tryPop: hands up to `max` samples in push order to consume(const
  // Sample&), in place, and returns how many, claiming them with no atomic
  // read-modify-write. Each cell goes back to the producers once consumed.
  template <typename Consume>
  size_t drain(size_t max, Consume&& consume) {
    const uint64_t start = dequeuePos_.load(std::memory_order_relaxed);
    const uint64_t end = start + max;
    // Locals: the compiler would reload members after every acquire load.
    Cell* const cells = cells_.get();
    const size_t mask = mask_;
    uint64_t pos = start;
    // In runs of adjacent cells (at most two per lap of the ring): a cell
    // pointer steps on, no index is masked per sample.
    bool more = true;
    while (more && pos != end) {
      Cell* cell = cells + (pos & mask);
      const uint64_t runEnd = pos + std::min<uint64_t>(end - pos, mask + 1 - (pos & mask));
      for (; pos != runEnd; ++pos, ++cell) {
        if (cell->sequence.load(std::memory_order_acquire) != pos + 1) {
          more = false;
          break;
        }
        consume(static_cast<const Sample&>(cell->sample));
        cell->sequence.store(pos + mask + 1, std::memory_order_release);
      }
    }
    if (pos != start) dequeuePos_.store(pos, std::memory_order_relaxed);
    return static_cast<size_t>(pos - start);
  }

  size_t capacity() const { return mask_ + 1; }
  uint64_t pushed() const { return enqueuePos_.load(std::memory_order_relaxed); }
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  struct Cell {
    std::atomic<uint64_t> sequence;
    Sample sample;
  };
  static size_t freeRun(Cell* cells, size_t mask, uint64_t pos, size_t limit) noexcept;

  std::unique_ptr<Cell[]> cells_;
  size_t mask_;
  alignas(64) std::atomic<uint64_t> enqueuePos_{0};
  alignas(64) std::atomic<uint64_t> dequeuePos_{0};
  alignas(64) std::atomic<uint64_t> dropped_{0};
};

}  // namespace Atoll::forecast
