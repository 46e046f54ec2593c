#pragma once
// Single-writer seqlock publication of a trivially copyable snapshot. Readers
// never block the writer and never see a mix of two publications: the payload
// is copied through atomic words (so the race is defined behaviour and clean
// under ThreadSanitizer) and a reader retries when the sequence moved.
//
// Ordering without fences: the writer makes the sequence odd, then stores the
// words with release; a reader that observes any word of a newer publication
// therefore also observes the odd sequence on its closing load.
#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

namespace Atoll::forecast {

template <typename T>
class SeqlockCell {
  static_assert(std::is_trivially_copyable_v<T>, "seqlock payloads are copied bytewise");
  static constexpr size_t kWords = (sizeof(T) + 7) / 8;

 public:
  // Writer side: one thread only.
  void store(const T& value) noexcept {
    const uint64_t seq = sequence_.load(std::memory_order_relaxed);
    if constexpr (kWords <= 8 && sizeof(T) % 8 == 0) {
      // Small records (short-term snapshots, one per series per tick):
      // straight-line stores of whole words, no staging copy.
      const auto* bytes = reinterpret_cast<const unsigned char*>(&value);
      sequence_.store(seq + 1, std::memory_order_relaxed);
      [&]<size_t... I>(std::index_sequence<I...>) {
        (words_[I].store(wordOf(bytes + 8 * I), std::memory_order_release), ...);
      }
      (std::make_index_sequence<kWords>{});
    } else {
      // Only the last word can have bytes the payload does not cover: zero
      // it instead of the whole buffer (profiles are about 2 KiB).
      uint64_t buffer[kWords];
      buffer[kWords - 1] = 0;
      std::memcpy(buffer, &value, sizeof(T));
      sequence_.store(seq + 1, std::memory_order_relaxed);
      for (size_t i = 0; i < kWords; ++i) words_[i].store(buffer[i], std::memory_order_release);
    }
    sequence_.store(seq + 2, std::memory_order_release);
  }

  // Reader side: false when a publication was in progress or none happened yet.
  bool tryLoad(T& out) const noexcept {
    const uint64_t before = sequence_.load(std::memory_order_acquire);
    if (before == 0 || (before & 1) != 0) return false;
    uint64_t buffer[kWords];
    for (size_t i = 0; i < kWords; ++i) buffer[i] = words_[i].load(std::memory_order_acquire);
    if (sequence_.load(std::memory_order_relaxed) != before) return false;
    std::memcpy(&out, buffer, sizeof(T));
    return true;
  }

  // Retries a bounded number of times; false when never published or the
  // writer kept it busy (a reader should then try again later).
  bool load(T& out, int attempts = 1000) const noexcept {
    for (int i = 0; i < attempts; ++i) {
      if (tryLoad(out)) return true;
      if (sequence_.load(std::memory_order_relaxed) == 0) return false;
    }
    return false;
  }

  uint64_t publications() const noexcept { return sequence_.load(std::memory_order_acquire) / 2; }

 private:
  static uint64_t wordOf(const unsigned char* bytes) noexcept {
    uint64_t word;
    std::memcpy(&word, bytes, 8);
    return word;
  }

  std::atomic<uint64_t> sequence_{0};
  std::array<std::atomic<uint64_t>, kWords> words_{};
};

}  // namespace Atoll::forecast
