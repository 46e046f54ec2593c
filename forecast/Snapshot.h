#pragma once
// What readers (planner, API, CLI) get: fixed-size, trivially copyable
// records published through seqlock cells. Each carries a checksum of its own
// bytes so any reader can verify it got one whole publication.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

namespace Atoll::forecast {

inline constexpr int kMaxProfileSteps = 144;  // 12 h at 5-min steps
inline constexpr int kMaxTrackedHorizons = 8;

// 16 bytes: a tracked horizon is at most 10,000 steps (ModelShape::validate),
// and the model's kind fills the two bytes after it (part of every
// published profile, eight records each).
struct AccuracyRecord {
  int16_t horizon = 0;
  uint8_t bestModel = 0;  // ModelKind
  float mase = 0;
  float coverage95 = 0;
  uint32_t errors = 0;
};

// A series' (or an island's) demand profile from its last completed step.
struct ProfileSnapshot {
  uint64_t key = 0;          // SeriesKey::packed() or island id
  uint64_t tick = 0;         // forecaster tick that published it
  int64_t originStepNs = 0;  // start of the last completed step
  int64_t stepNs = 0;
  uint32_t steps = 0;  // valid entries of p50/p95/p99
  uint32_t trackedCount = 0;
  float p50[kMaxProfileSteps] = {};
  float p95[kMaxProfileSteps] = {};
  float p99[kMaxProfileSteps] = {};
  AccuracyRecord accuracy[kMaxTrackedHorizons] = {};
  // Islands only: contention against capacity.
  double capacity = 0;
  double contentionProbability = 0;
  int32_t peakStep = -1;
  int32_t firstRiskStep = -1;
  uint64_t checksum = 0;
};

// Next-sample forecast at the raw (1-s) grain.
struct ShortTermSnapshot {
  uint64_t key = 0;
  uint64_t tick = 0;
  int64_t lastSampleNs = 0;
  double p50 = 0;
  double p95 = 0;
  uint64_t checksum = 0;
};

// FNV-1a style mix over every 8-byte word before the trailing checksum field.
// Small records (the short-term snapshot, sealed for every series on every
// tick) are mixed in one unrolled chain; large ones (profiles, about 2 KiB)
// in four independent lanes (words i, i+4, ...) folded at the end, the same
// detection of a mixed publication without one long multiply chain per word
// on the writer's path.
namespace snapshot_detail {
inline constexpr uint64_t kPrime = 1099511628211ULL;
inline uint64_t mix(uint64_t lane, uint64_t word) {
  lane = (lane ^ word) * kPrime;
  return lane ^ (lane >> 29);
}
inline uint64_t wordAt(const unsigned char* bytes, size_t index) {
  uint64_t word;
  std::memcpy(&word, bytes + 8 * index, 8);
  return word;
}
}  // namespace snapshot_detail

// Always inlined: for the short-term snapshot the call would cost as much as
// the mixing.
template <typename T>
[[gnu::always_inline]] inline uint64_t snapshotChecksum(const T& record) {
  using snapshot_detail::mix;
  using snapshot_detail::wordAt;
  static_assert(offsetof(T, checksum) % 8 == 0, "checksum must follow whole words");
  constexpr size_t kWords = offsetof(T, checksum) / 8;
  const auto* bytes = reinterpret_cast<const unsigned char*>(&record);
  if constexpr (kWords <= 8) {
    uint64_t hash = 1469598103934665603ULL;
    [&]<size_t... I>(std::index_sequence<I...>) {
      ((hash = mix(hash, wordAt(bytes, I))), ...);
    }
    (std::make_index_sequence<kWords>{});
    return hash;
  } else {
    uint64_t lanes[4] = {1469598103934665603ULL, 0x9E3779B97F4A7C15ULL, 0xC2B2AE3D27D4EB4FULL,
                         0x165667B19E3779F9ULL};
    for (size_t i = 0; i < kWords; ++i) lanes[i & 3] = mix(lanes[i & 3], wordAt(bytes, i));
    uint64_t hash = lanes[0];
    for (int i = 1; i < 4; ++i) hash = mix(hash, lanes[i]);
    return hash;
  }
}

template <typename T>
void sealSnapshot(T& record) {
  record.checksum = snapshotChecksum(record);
}

template <typename T>
bool snapshotIntact(const T& record) {
  return record.checksum == snapshotChecksum(record);
}

}  // namespace Atoll::forecast
