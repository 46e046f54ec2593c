#pragma once
// Bounded lock-free ring (Vyukov's array queue) carrying samples from any
// number of producers to the forecaster thread. A producer never waits: when
// the ring is full the sample is counted as dropped and the call returns.
// Each cell's sequence number hands the cell over with acquire/release, so the
// payload itself needs no atomics.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

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
  // Any thread; in Atoll only the forecaster thread pops.
  bool tryPop(Sample& out) noexcept;

  size_t capacity() const { return mask_ + 1; }
  uint64_t pushed() const { return pushed_.load(std::memory_order_relaxed); }
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  struct Cell {
    std::atomic<uint64_t> sequence;
    Sample sample;
  };
  std::unique_ptr<Cell[]> cells_;
  size_t mask_;
  alignas(64) std::atomic<uint64_t> enqueuePos_{0};
  alignas(64) std::atomic<uint64_t> dequeuePos_{0};
  alignas(64) std::atomic<uint64_t> pushed_{0};
  std::atomic<uint64_t> dropped_{0};
};

}  // namespace Atoll::forecast
