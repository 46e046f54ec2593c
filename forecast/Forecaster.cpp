#include "forecast/Forecaster.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

namespace Atoll::forecast {

namespace {

constexpr int64_t kNoStep = std::numeric_limits<int64_t>::min();
constexpr double kShortTermAlpha = 0.3;
constexpr double kShortTermQuantileStep = 0.05;
// The largest sample value taken. No resource a series measures comes near
// it (a petabyte, or a petabyte per second); beyond it a value is a
// telemetry fault (a counter wrap read as a rate), and the models, which keep
// float state and running sums, would carry it for the rest of the series'
// life: as inf or NaN past the float range, and below that as rounding that
// outweighs the series' real values.
constexpr double kMaxSampleValue = 1e15;

int64_t stepOf(int64_t timestampNs, int64_t stepNs) {
  int64_t step = timestampNs / stepNs;
  if (timestampNs % stepNs != 0 && timestampNs < 0) --step;
  return step;
}

// Start of the step after `step`, saturated (timestamps near the int64 limit
// are valid input).
int64_t endOfStep(int64_t step, int64_t stepNs) {
  int64_t end = 0;
  if (__builtin_mul_overflow(step + 1, stepNs, &end)) return std::numeric_limits<int64_t>::max();
  return end;
}

// Counters written by the forecaster thread alone: a plain load and store
// instead of a locked read-modify-write; readers load them relaxed.
void bump(std::atomic<uint64_t>& counter, uint64_t by = 1) {
  counter.store(counter.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}

ModelConfig effectiveModel(const ForecasterConfig& config) {
  ModelConfig model = config.model;
  model.maxHorizon = std::max(model.maxHorizon, config.profileSteps);
  return model;
}

}  // namespace

struct Forecaster::Series {
  Series(SeriesKey k, uint32_t s, const ModelShape& shape) : key(k), slot(s), model(shape) {}
  // What every raw sample reads and writes comes first, together, after the
  // key that seriesFor checks its guess against.
  SeriesKey key;
  int64_t lastTimestampNs = std::numeric_limits<int64_t>::min();
  // End of the open step (kNoStep while none is open): a sample before it,
  // and after the last one, belongs to the open step, with no division.
  int64_t openStepEndNs = kNoStep;
  double sum = 0;
  double shortLevel = 0, shortScale = 0, shortQ95 = 0;
  uint32_t count = 0;
  bool profileDirty = false, shortDirty = false;
  // This series' entry in its metric's hand-out (null before its first
  // sample); rewritten by every sample.
  ShortTermForecast* handOut = nullptr;
  // Ticks at which the short term is next due unasked, and until which a
  // reader's interest keeps its publication on every tick.
  uint64_t nextShortTermTick = 0;
  uint64_t shortWatchedUntilTick = 0;

  uint32_t slot;
  int64_t openStep = kNoStep;
  int64_t lastClosedStep = kNoStep;
  double lastClosedValue = 0;
  // Model steps at the last profile publication (0: never published), and
  // the step until which a reader's interest keeps publication eager.
  uint64_t publishedAtStep = 0;
  uint64_t watchedUntilStep = 0;
  // Model steps at which the profile is next due unasked (checked on every
  // tick while a closed step is unpublished, so kept as one comparison).
  uint64_t nextProfileStep = 0;
  SeriesModel model;
};

struct Forecaster::Island {
  Island(uint32_t i, const ModelShape& shape) : slot(i), id(i), model(shape) {}
  uint32_t slot;  // index into islands_ and islandProfiles_
  // What callers hold: the slot plus maxIslands times the number of times
  // the slot was reused, so that a reader still holding a released
  // island's id never takes the next island's profile in that slot for
  // its own (published profiles carry the id).
  uint32_t id;
  std::string name;
  std::vector<uint32_t> members;  // indices into series_
  double capacity = 0;
  SeriesModel model;
  int64_t lastStep = kNoStep;
  bool released = false;  // its id waits for the next defineIsland
};

Parsed<std::unique_ptr<Forecaster>> Forecaster::create(const ForecasterConfig& config) {
  const std::string label = "forecaster config";
  if (config.stepNs <= 0)
    return InputError{label, 0, std::to_string(config.stepNs), "step must be positive"};
  if (config.profileSteps < 1 || config.profileSteps > kMaxProfileSteps)
    return InputError{label, 0, std::to_string(config.profileSteps),
                      "profile steps must be between 1 and " + std::to_string(kMaxProfileSteps)};
  if (config.maxSeries < 1 || config.maxSeries > (1u << 24))
    return InputError{label, 0, std::to_string(config.maxSeries), "max series out of range"};
  if (config.rings < 1 || config.rings > 64)
    return InputError{label, 0, std::to_string(config.rings), "ring count must be 1 to 64"};
  if (config.maxIslands < 1 || config.maxIslands > (1u << 16))
    return InputError{label, 0, std::to_string(config.maxIslands),
                      "max islands must be 1 to 65536"};
  if (config.unreadPublishSteps < 1)
    return InputError{label, 0, std::to_string(config.unreadPublishSteps),
                      "unread publish steps must be >= 1"};
  if (config.watchSteps < 0)
    return InputError{label, 0, std::to_string(config.watchSteps), "watch steps must be >= 0"};
  if (config.unreadShortTermTicks < 1)
    return InputError{label, 0, std::to_string(config.unreadShortTermTicks),
                      "unread short-term ticks must be >= 1"};
  if (config.watchTicks < 0)
    return InputError{label, 0, std::to_string(config.watchTicks), "watch ticks must be >= 0"};
  if (config.maxGapSteps < 0)
    return InputError{label, 0, std::to_string(config.maxGapSteps), "max gap must be >= 0"};
  const ModelConfig model = effectiveModel(config);
  if (std::string problem = ModelShape::validate(model); !problem.empty())
    return InputError{label, 0, "", problem};
  if (ModelShape(model).trackedCount() > kMaxTrackedHorizons)
    return InputError{label, 0, std::to_string(model.trackedHorizons.size()),
                      "at most " + std::to_string(kMaxTrackedHorizons) + " tracked horizons"};
  return std::unique_ptr<Forecaster>(new Forecaster(config));
}

Forecaster::Forecaster(const ForecasterConfig& config)
    : config_(config), shape_(effectiveModel(config)) {
  for (size_t i = 0; i < config.rings; ++i)
    rings_.push_back(std::make_unique<SampleRing>(config.ringCapacity));
  const size_t directorySize = std::bit_ceil(2 * (config.maxSeries + 1));
  directoryMask_ = directorySize - 1;
  directoryKeys_ = std::make_unique<std::atomic<uint64_t>[]>(directorySize);
  directorySlots_ = std::make_unique<std::atomic<uint32_t>[]>(directorySize);
  for (size_t i = 0; i < directorySize; ++i) {
    directoryKeys_[i].store(0, std::memory_order_relaxed);
    directorySlots_[i].store(0, std::memory_order_relaxed);
  }
  profiles_ = std::make_unique<SeqlockCell<ProfileSnapshot>[]>(config.maxSeries);
  profileRequested_ = std::make_unique<std::atomic<uint8_t>[]>(config.maxSeries);
  for (size_t i = 0; i < config.maxSeries; ++i)
    profileRequested_[i].store(0, std::memory_order_relaxed);
  shortTerms_ = std::make_unique<SeqlockCell<ShortTermSnapshot>[]>(config.maxSeries);
  shortTermRequested_ = std::make_unique<std::atomic<uint8_t>[]>(config.maxSeries);
  for (size_t i = 0; i < config.maxSeries; ++i)
    shortTermRequested_[i].store(0, std::memory_order_relaxed);
  islandProfiles_ = std::make_unique<SeqlockCell<ProfileSnapshot>[]>(config.maxIslands);
  // Indexed by the metric's byte as a sample carries it: any value a
  // producer can send has its table, named metric or not.
  handOuts_ = std::make_unique<HandOut[]>(size_t{std::numeric_limits<uint8_t>::max()} + 1);
  series_.reserve(config.maxSeries);
  slotGuess_ = series_.data();  // never reallocated: reserved for maxSeries
  islands_.reserve(config.maxIslands);
  scratch_.resize(config.profileSteps);
}

Forecaster::~Forecaster() = default;

int64_t Forecaster::findSlot(uint64_t packedKey) const {
  size_t at = (packedKey * 0x9E3779B97F4A7C15ULL) >> 20 & directoryMask_;
  for (size_t probes = 0; probes <= directoryMask_; ++probes, at = (at + 1) & directoryMask_) {
    const uint64_t key = directoryKeys_[at].load(std::memory_order_acquire);
    if (key == 0) return -1;
    if (key == packedKey) return directorySlots_[at].load(std::memory_order_relaxed);
  }
  return -1;
}

inline Forecaster::Series* Forecaster::seriesFor(SeriesKey key) {
  // Producers push their series in the same order on every poll (the
  // collector walks its workloads), and slots are handed out in the order
  // series first appear: the slot after the last one found is tried first,
  // with no hashing or directory probe.
  // A pointer rather than an index: no multiplication by the (large) size of
  // a Series on the path of every sample.
  Series* const guess = slotGuess_;
  if (guess != series_.data() + series_.size() && guess->key == key) {
    slotGuess_ = guess + 1;
    return guess;
  }
  const uint64_t packed = key.packed();
  // The forecaster thread wrote every key itself: relaxed loads suffice.
  for (size_t at = (packed * 0x9E3779B97F4A7C15ULL) >> 20 & directoryMask_;;
       at = (at + 1) & directoryMask_) {
    const uint64_t stored = directoryKeys_[at].load(std::memory_order_relaxed);
    if (stored == packed) {
      const uint32_t slot = directorySlots_[at].load(std::memory_order_relaxed);
      slotGuess_ = &series_[slot] + 1;
      return &series_[slot];
    }
    if (stored == 0) break;
  }
  return addSeries(key);
}

Forecaster::Series* Forecaster::addSeries(SeriesKey key) {
  const uint64_t packed = key.packed();
  if (series_.size() >= config_.maxSeries) return nullptr;
  const auto slot = static_cast<uint32_t>(series_.size());
  series_.emplace_back(key, slot, shape_);
  size_t at = (packed * 0x9E3779B97F4A7C15ULL) >> 20 & directoryMask_;
  while (directoryKeys_[at].load(std::memory_order_relaxed) != 0) at = (at + 1) & directoryMask_;
  directorySlots_[at].store(slot, std::memory_order_relaxed);
  directoryKeys_[at].store(packed, std::memory_order_release);
  slotGuess_ = &series_[slot] + 1;
  return &series_[slot];
}

void Forecaster::closeStep(Series& series) {
  const double mean = series.sum / series.count;
  series.model.update(mean);
  series.lastClosedStep = series.openStep;
  series.lastClosedValue = mean;
  series.openStepEndNs = kNoStep;
  series.sum = 0;
  series.count = 0;
  series.profileDirty = true;
  modelsMoved_ = true;
}

// Short term at the raw grain: EW level and an adaptive p95 offset, O(1)
// with no data-dependent branch once the series has its first sample.
inline void Forecaster::updateShortTerm(Series& series, double value, uint64_t& shortTermDueTick) {
  // No hand-out entry yet: the first sample (one pointer test, where
  // shortScale < 0 took a floating-point compare).
  if (series.handOut == nullptr) {
    series.shortLevel = value;
    series.shortScale = 0;
    addHandOutEntry(series);
  } else {
    const double error = value - series.shortLevel;
    // (missed - 0.05) for missed = 1 or 0, chosen instead of computed: the
    // same doubles (the compiler rounds 1.0 - 0.05 as the machine would).
    const double missedShare = error > series.shortQ95 ? 1.0 - 0.05 : 0.0 - 0.05;
    series.shortScale += 0.05 * (std::fabs(error) - series.shortScale);
    series.shortQ95 += kShortTermQuantileStep * series.shortScale * missedShare;
    series.shortLevel += kShortTermAlpha * error;
  }
  series.shortDirty = true;
  // Without a branch: a series with unpublished samples already counts in
  // the minimum, so taking it again changes nothing.
  shortTermDueTick = std::min(shortTermDueTick, series.nextShortTermTick);
}

// Inlined into the ring's drain loop: a call per sample cost about as much
// as the short-term model's update.
[[gnu::always_inline]] inline void Forecaster::consume(const Sample& sample,
                                                       uint64_t& shortTermDueTick) {
  // One range check rejects NaN (every comparison false), infinities,
  // negative values and values no resource reaches.
  if (!(sample.value >= 0 && sample.value <= kMaxSampleValue)) {
    bump(counters_.invalidValue);
    return;
  }
  Series* series = seriesFor(sample.key);
  if (series == nullptr) {
    bump(counters_.noSlot);
    return;
  }
  if (sample.timestampNs <= series->lastTimestampNs) {
    bump(counters_.badTimestamp);
    return;
  }
  if (sample.timestampNs >= series->openStepEndNs && !openStepFor(*series, sample.timestampNs))
    return;
  series->lastTimestampNs = sample.timestampNs;
  series->sum += sample.value;
  ++series->count;
  updateShortTerm(*series, sample.value, shortTermDueTick);
  *series->handOut = shortTermOf(*series);
}

[[gnu::noinline]] void Forecaster::addHandOutEntry(Series& series) {
  HandOut& handOut = handOuts_[static_cast<size_t>(series.key.metric)];
  if (handOut.entries.capacity() == 0) {
    handOut.entries.reserve(config_.maxSeries);
    handOut.slots.reserve(config_.maxSeries);
  }
  // Usually the last: slots are handed out in the order series first appear.
  const auto at = static_cast<size_t>(
      std::lower_bound(handOut.slots.begin(), handOut.slots.end(), series.slot) -
      handOut.slots.begin());
  handOut.slots.insert(handOut.slots.begin() + static_cast<ptrdiff_t>(at), series.slot);
  handOut.entries.insert(handOut.entries.begin() + static_cast<ptrdiff_t>(at), ShortTermForecast{});
  // Within the reserved capacity nothing moved but the entries after `at`.
  for (size_t i = at; i < handOut.entries.size(); ++i)
    series_[handOut.slots[i]].handOut = &handOut.entries[i];
}

// A sample past the open step (or with none open): closes the open step,
// bridges or restarts after a gap, and opens the sample's step. False (and
// counted) when the sample's step is already closed.
[[gnu::noinline]] bool Forecaster::openStepFor(Series& series, int64_t timestampNs) {
  const int64_t step = stepOf(timestampNs, config_.stepNs);
  if (series.lastClosedStep != kNoStep && step <= series.lastClosedStep) {
    bump(counters_.late);
    return false;
  }
  if (series.count > 0 && step > series.openStep) closeStep(series);
  if (series.count == 0) {
    if (series.lastClosedStep != kNoStep) {
      const int64_t gap = step - series.lastClosedStep - 1;
      // Filled steps or a reset move what profileDue sees.
      if (gap > 0) modelsMoved_ = true;
      if (gap > config_.maxGapSteps) {
        series.model.reset();
        series.publishedAtStep = 0;  // the old profile is void: replace it first
        series.lastClosedStep = kNoStep;
        bump(counters_.restarted);
      } else {
        for (int64_t i = 0; i < gap; ++i) series.model.update(series.lastClosedValue, true);
      }
    }
    series.openStep = step;
    series.openStepEndNs = endOfStep(step, config_.stepNs);
    // A step the clock has completed already: this tick's pass closes it.
    if (step <= tickCompletedStep_) closeScanDue_ = true;
  }
  return true;
}

// Whether a dirty profile is republished now: always the first one (and the
// first after a restart), on every step while a reader is watching, else at
// the unread cadence.
inline bool Forecaster::profileDue(Series& series, bool checkRequests) {
  const uint64_t steps = series.model.steps();
  if (checkRequests && profileRequested_[series.slot].load(std::memory_order_relaxed) != 0) {
    profileRequested_[series.slot].store(0, std::memory_order_relaxed);
    series.watchedUntilStep = steps + uint64_t(config_.watchSteps);
    return steps > 0;
  }
  return steps > 0 && (series.publishedAtStep == 0 || steps >= series.nextProfileStep);
}

void Forecaster::publishProfile(Series& series) {
  const uint64_t steps = series.model.steps();
  series.publishedAtStep = steps;
  // Watched: due again at the next step; otherwise at the unread cadence.
  series.nextProfileStep = steps + 1 <= series.watchedUntilStep
                               ? steps + 1
                               : steps + uint64_t(config_.unreadPublishSteps);
  ProfileSnapshot snapshot;
  fillProfile(series.model, series.key.packed(), series.lastClosedStep, snapshot);
  sealSnapshot(snapshot);
  profiles_[series.slot].store(snapshot);
  series.profileDirty = false;
}

inline bool Forecaster::shortTermDue(Series& series, bool checkRequests) {
  if (checkRequests && shortTermRequested_[series.slot].load(std::memory_order_relaxed) != 0) {
    shortTermRequested_[series.slot].store(0, std::memory_order_relaxed);
    series.shortWatchedUntilTick = tickCount_ + uint64_t(config_.watchTicks);
    return true;
  }
  return tickCount_ >= series.nextShortTermTick;
}

inline ShortTermForecast Forecaster::shortTermOf(const Series& series) {
  return {series.key.workload, series.lastTimestampNs, series.shortLevel,
          std::max(series.shortLevel, series.shortLevel + series.shortQ95)};
}

inline void Forecaster::publishShortTerm(Series& series) {
  series.nextShortTermTick = tickCount_ + 1 <= series.shortWatchedUntilTick
                                 ? tickCount_ + 1
                                 : tickCount_ + uint64_t(config_.unreadShortTermTicks);
  // Current since the series' last sample (a dirty series has had one).
  const ShortTermForecast& forecast = *series.handOut;
  ShortTermSnapshot snapshot;
  snapshot.key = series.key.packed();
  snapshot.tick = tickCount_;
  snapshot.lastSampleNs = forecast.lastSampleNs;
  snapshot.p50 = forecast.p50;
  snapshot.p95 = forecast.p95;
  sealSnapshot(snapshot);
  shortTerms_[series.slot].store(snapshot);
  series.shortDirty = false;
}

// The forecast path and per-horizon accuracy of one model, as every
// published profile (a series' or an island's) carries them; leaves the
// path's quantiles in scratch_ for the caller.
void Forecaster::fillProfile(const SeriesModel& model, uint64_t key, int64_t originStep,
                             ProfileSnapshot& snapshot) {
  snapshot.key = key;
  snapshot.tick = tickCount_;
  snapshot.stepNs = config_.stepNs;
  snapshot.originStepNs = originStep * config_.stepNs;
  snapshot.steps = static_cast<uint32_t>(config_.profileSteps);
  model.profile(scratch_);
  for (int k = 0; k < config_.profileSteps; ++k) {
    snapshot.p50[k] = static_cast<float>(scratch_[k].p50);
    snapshot.p95[k] = static_cast<float>(scratch_[k].p95);
    snapshot.p99[k] = static_cast<float>(scratch_[k].p99);
  }
  snapshot.trackedCount = static_cast<uint32_t>(shape_.trackedCount());
  for (int j = 0; j < shape_.trackedCount(); ++j) {
    const HorizonAccuracy acc = model.accuracy(j);
    snapshot.accuracy[j] = {.horizon = static_cast<int16_t>(acc.horizon),
                            .bestModel = static_cast<uint8_t>(acc.bestModel),
                            .mase = static_cast<float>(acc.mase),
                            .coverage95 = static_cast<float>(acc.coverage95),
                            .errors = static_cast<uint32_t>(acc.errors)};
  }
}

void Forecaster::publishIsland(Island& island, uint64_t stepIndex) {
  ProfileSnapshot snapshot;
  fillProfile(island.model, island.id, static_cast<int64_t>(stepIndex), snapshot);
  const ContentionScore score =
      contentionScore(std::span<const Quantiles>(scratch_.data(), scratch_.size()), island.capacity,
                      config_.riskThreshold);
  snapshot.capacity = island.capacity;
  snapshot.contentionProbability = score.probability;
  snapshot.peakStep = score.peakStep;
  snapshot.firstRiskStep = score.firstRiskStep;
  sealSnapshot(snapshot);
  islandProfiles_[island.slot].store(snapshot);
}

void Forecaster::withdrawIsland(const Island& island) {
  ProfileSnapshot empty;
  empty.key = island.id;
  empty.tick = tickCount_;
  empty.stepNs = config_.stepNs;
  sealSnapshot(empty);
  islandProfiles_[island.slot].store(empty);
}

Forecaster::Island* Forecaster::islandOf(uint32_t id) {
  const size_t slot = id % config_.maxIslands;
  if (slot >= islands_.size() || islands_[slot].id != id || islands_[slot].released) return nullptr;
  return &islands_[slot];
}

Parsed<std::vector<uint32_t>> Forecaster::memberSlots(const IslandSpec& spec) {
  if (spec.members.empty())
    return InputError{"island " + spec.name, 0, "", "island has no members"};
  if (!(spec.capacity > 0) || !std::isfinite(spec.capacity))
    return InputError{"island " + spec.name, 0, std::to_string(spec.capacity),
                      "capacity must be positive and finite"};
  std::vector<uint32_t> members;
  for (const SeriesKey& key : spec.members) {
    Series* series = seriesFor(key);
    if (series == nullptr)
      return InputError{"island " + spec.name, 0, std::to_string(key.workload),
                        "no series slot left for member"};
    members.push_back(series->slot);
  }
  return members;
}

Parsed<uint32_t> Forecaster::defineIsland(const IslandSpec& spec) {
  auto released = std::find_if(islands_.begin(), islands_.end(),
                               [](const Island& island) { return island.released; });
  if (released == islands_.end() && islands_.size() >= config_.maxIslands)
    return InputError{"island " + spec.name, 0, std::to_string(config_.maxIslands),
                      "too many islands"};
  auto slots = memberSlots(spec);
  if (!slots) return slots.error();
  std::vector<uint32_t> members = std::move(slots.value());
  if (released != islands_.end()) {
    // A released island has a reset model and a withdrawn publication
    // already (releaseIsland): it starts as a new one would.
    Island& island = *released;
    island.released = false;
    // The next id of this slot; after 2^32 / maxIslands reuses ids repeat.
    const uint64_t next = uint64_t{island.id} + config_.maxIslands;
    island.id = next > UINT32_MAX ? island.slot : static_cast<uint32_t>(next);
    island.name = spec.name;
    island.members = std::move(members);
    island.capacity = spec.capacity;
    islandsInUse_.store(islandsInUse_.load(std::memory_order_relaxed) + 1,
                        std::memory_order_relaxed);
    return island.id;
  }
  const auto id = static_cast<uint32_t>(islands_.size());
  Island& island = islands_.emplace_back(id, shape_);
  island.name = spec.name;
  island.members = std::move(members);
  island.capacity = spec.capacity;
  islandsInUse_.store(islandsInUse_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  islandCount_.store(id + 1, std::memory_order_release);
  return id;
}

Parsed<uint32_t> Forecaster::redefineIsland(uint32_t id, const IslandSpec& spec,
                                            IslandHistory history) {
  Island* found = islandOf(id);
  if (found == nullptr)
    return InputError{"island " + spec.name, 0, std::to_string(id), "no such island"};
  auto slots = memberSlots(spec);
  if (!slots) return slots.error();
  std::vector<uint32_t> members = std::move(slots.value());
  Island& island = *found;
  island.name = spec.name;
  island.members = std::move(members);
  island.capacity = spec.capacity;
  if (history == IslandHistory::Restart) {
    island.model.reset();
    island.lastStep = kNoStep;
    // The last profile forecast the old set: readers wait for the new one.
    withdrawIsland(island);
  }
  return id;
}

bool Forecaster::releaseIsland(uint32_t id) {
  Island* found = islandOf(id);
  if (found == nullptr) return false;
  Island& island = *found;
  island.released = true;
  islandsInUse_.store(islandsInUse_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
  island.members.clear();
  island.model.reset();
  island.lastStep = kNoStep;
  withdrawIsland(island);
  return true;
}

size_t Forecaster::islandsInUse() const {
  return islandsInUse_.load(std::memory_order_relaxed);
}

bool Forecaster::requestsToCheck() {
  // Load first: the exchange (a locked instruction) only when a reader
  // posted something.
  const bool posted = requestsPosted_.load(std::memory_order_relaxed) != 0 &&
                      requestsPosted_.exchange(0, std::memory_order_acquire) != 0;
  return posted || requestsUnserviced_;
}

void Forecaster::closeAndPublish(int64_t completedStep, bool checkRequests) {
  uint64_t shortTermDueTick = std::numeric_limits<uint64_t>::max();
  bool unserviced = false;
  for (Series& series : series_) {
    if (series.count > 0 && series.openStep <= completedStep) closeStep(series);
    if (series.profileDirty && profileDue(series, checkRequests)) publishProfile(series);
    if (series.shortDirty && shortTermDue(series, checkRequests)) publishShortTerm(series);
    if (series.shortDirty) shortTermDueTick = std::min(shortTermDueTick, series.nextShortTermTick);
    // A request for a series with nothing new stays raised until it has:
    // the flags are read again on the next tick.
    if (checkRequests && (profileRequested_[series.slot].load(std::memory_order_relaxed) != 0 ||
                          shortTermRequested_[series.slot].load(std::memory_order_relaxed) != 0))
      unserviced = true;
  }
  shortTermDueTick_ = shortTermDueTick;
  requestsUnserviced_ = unserviced;
  closedThrough_ = completedStep;
  closeScanDue_ = false;
  modelsMoved_ = false;
}

void Forecaster::tick(int64_t nowNs) {
  ++tickCount_;
  bump(counters_.ticks);
  // Known before the samples are consumed, so that opening a step the clock
  // has completed already can ask for this tick's closing pass.
  const int64_t completedStep = stepOf(nowNs, config_.stepNs) - 1;
  tickCompletedStep_ = completedStep;
  uint64_t consumed = 0;
  uint64_t shortTermDueTick = shortTermDueTick_;
  for (auto& ring : rings_) {
    // Bounded: samples pushed while draining wait for the next tick.
    consumed += ring->drain(ring->capacity(), [this, &shortTermDueTick](const Sample& sample) {
      consume(sample, shortTermDueTick);
    });
  }
  bump(counters_.consumed, consumed);
  shortTermDueTick_ = shortTermDueTick;
  const bool checkRequests = requestsToCheck();
  // Without any of these, the pass over all series would close nothing and
  // publish nothing.
  if (checkRequests || completedStep != closedThrough_ || closeScanDue_ || modelsMoved_ ||
      tickCount_ >= shortTermDueTick_)
    closeAndPublish(completedStep, checkRequests);
  for (Island& island : islands_) {
    if (island.released) continue;
    if (island.lastStep == kNoStep || completedStep - island.lastStep > config_.maxGapSteps) {
      if (island.lastStep != kNoStep) island.model.reset();
      island.lastStep = completedStep - 1;
    }
    if (island.lastStep >= completedStep) continue;
    for (int64_t step = island.lastStep + 1; step <= completedStep; ++step) {
      double demand = 0;
      for (uint32_t member : island.members) demand += series_[member].lastClosedValue;
      island.model.update(demand);
    }
    island.lastStep = completedStep;
    publishIsland(island, static_cast<uint64_t>(completedStep));
  }
}

bool Forecaster::readProfile(SeriesKey key, ProfileSnapshot& out) const {
  const int64_t slot = findSlot(key.packed());
  if (slot < 0) return false;
  // Load before store: readers of a watched series do not keep writing the
  // shared flag's cache line.
  std::atomic<uint8_t>& requested = profileRequested_[slot];
  if (requested.load(std::memory_order_relaxed) == 0) {
    requested.store(1, std::memory_order_relaxed);
    requestsPosted_.store(1, std::memory_order_release);
  }
  return profiles_[slot].load(out);
}

bool Forecaster::readShortTerm(SeriesKey key, ShortTermSnapshot& out) const {
  const int64_t slot = findSlot(key.packed());
  if (slot < 0) return false;
  std::atomic<uint8_t>& requested = shortTermRequested_[slot];
  if (requested.load(std::memory_order_relaxed) == 0) {
    requested.store(1, std::memory_order_relaxed);
    requestsPosted_.store(1, std::memory_order_release);
  }
  return shortTerms_[slot].load(out);
}

bool Forecaster::readIsland(uint32_t island, ProfileSnapshot& out) const {
  // steps = 0: withdrawn (released, or restarted and not yet republished);
  // another key: the slot holds a later island now.
  const size_t slot = island % config_.maxIslands;
  return slot < islandCount_.load(std::memory_order_acquire) && islandProfiles_[slot].load(out) &&
         out.steps > 0 && out.key == island;
}

void Forecaster::shortTermsNow(Metric metric, std::vector<ShortTermForecast>& out) const {
  const std::vector<ShortTermForecast>& entries = handOuts_[static_cast<size_t>(metric)].entries;
  out.assign(entries.begin(), entries.end());
}

std::optional<VmPressure> Forecaster::readVmPressure(
    uint32_t workload, const std::array<double, kMetricCount>& allocations) const {
  std::array<std::vector<Quantiles>, kMetricCount> profiles;
  std::array<std::span<const Quantiles>, kMetricCount> spans;
  bool any = false;
  for (int m = 0; m < kMetricCount; ++m) {
    if (!(allocations[m] > 0)) continue;
    auto snapshot = std::make_unique<ProfileSnapshot>();
    if (!readProfile(SeriesKey{workload, static_cast<Metric>(m)}, *snapshot)) continue;
    for (uint32_t k = 0; k < snapshot->steps; ++k)
      profiles[m].push_back({snapshot->p50[k], snapshot->p95[k], snapshot->p99[k]});
    spans[m] = profiles[m];
    any = true;
  }
  if (!any) return std::nullopt;
  return vmPressure(spans, allocations, config_.riskThreshold);
}

ForecasterCounters Forecaster::counters() const {
  ForecasterCounters c;
  c.consumed = counters_.consumed.load(std::memory_order_relaxed);
  for (const auto& ring : rings_) c.droppedFullRing += ring->dropped();
  c.droppedInvalidValue = counters_.invalidValue.load(std::memory_order_relaxed);
  c.droppedBadTimestamp = counters_.badTimestamp.load(std::memory_order_relaxed);
  c.droppedLate = counters_.late.load(std::memory_order_relaxed);
  c.droppedNoSlot = counters_.noSlot.load(std::memory_order_relaxed);
  c.seriesRestarted = counters_.restarted.load(std::memory_order_relaxed);
  c.ticks = counters_.ticks.load(std::memory_order_relaxed);
  return c;
}

size_t Forecaster::bytesPerSeries() const {
  return SeriesModel(shape_).memoryBytes() + (sizeof(Series) - sizeof(SeriesModel)) +
         sizeof(SeqlockCell<ProfileSnapshot>) + sizeof(SeqlockCell<ShortTermSnapshot>) +
         2 * sizeof(std::atomic<uint8_t>) + sizeof(ShortTermForecast) + sizeof(uint32_t);
}

}  // namespace Atoll::forecast
