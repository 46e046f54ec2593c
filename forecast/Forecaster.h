#pragma once
// The in-process forecaster. Producers push samples into lock-free rings and
// never wait; the forecaster thread alone calls tick(), which drains the
// rings, resamples each series onto the model step (mean of the samples of a
// step; short gaps bridged with the last value, long gaps restart the series),
// updates the models, aggregates islands as series of their own, and
// publishes profiles and scores through seqlock cells. Readers on any thread
// look series up in a lock-free directory and copy a whole snapshot.
//
// Bad samples (NaN, infinite, negative, beyond any resource (1e15),
// duplicated or backwards timestamps, samples for a step already closed) are
// dropped and counted; they never reach a model.
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "forecast/InputError.h"
#include "forecast/ModelConfig.h"
#include "forecast/SampleRing.h"
#include "forecast/Scores.h"
#include "forecast/Seqlock.h"
#include "forecast/SeriesModel.h"
#include "forecast/Snapshot.h"

namespace Atoll::forecast {

// The short-term forecast of a workload's next raw sample of one metric as
// the forecaster thread holds it (see Forecaster::shortTermsNow).
struct ShortTermForecast {
  uint32_t workload = 0;
  int64_t lastSampleNs = 0;
  double p50 = 0;
  double p95 = 0;
};

// How a redefined island treats the history of its aggregate model.
enum class IslandHistory {
  Keep,     // same members, new capacity: the demand series goes on
  Restart,  // other members: the old sum no longer describes the new set
};

struct ForecasterConfig {
  int64_t stepNs = 300'000'000'000;  // model step: 5 min
  int profileSteps = 72;             // published profile: 6 h
  int64_t maxGapSteps = 288;         // longer silences restart a series
  size_t maxSeries = 4096;
  size_t maxIslands = 256;
  size_t rings = 1;
  size_t ringCapacity = 1 << 16;
  double riskThreshold = 0.05;  // per-step probability that marks a risk step
  // Lazy publication: computing and sealing a whole profile costs several
  // times the model step, so a series' profile is republished on every step
  // only while someone reads it (for watchSteps steps after a read), and
  // otherwise every unreadPublishSteps steps. A read of a stale profile asks
  // the forecaster thread to refresh it on its next tick; readers still get
  // the last whole publication at once, never a wait. 1 publishes every step.
  int unreadPublishSteps = 12;
  int watchSteps = 12;
  // The same for the short-term (raw-grain) forecast, in ticks: republished
  // on every tick that brought samples while read in the last watchTicks
  // ticks, otherwise every unreadShortTermTicks ticks. Its publication costs
  // more than a raw sample's own update, and most short-term series (memory,
  // I/O, network) are not read every second. 1 publishes every tick.
  int unreadShortTermTicks = 10;
  int watchTicks = 10;
  ModelConfig model;
};

// An island (or host) as the caller defines it: member series and a capacity
// in the members' unit. Its demand is forecast as a series of its own (the
// sum of the members at each step), so its quantiles account for how the
// members move together.
struct IslandSpec {
  std::string name;
  std::vector<SeriesKey> members;
  double capacity = 0;
};

struct ForecasterCounters {
  uint64_t consumed = 0;
  uint64_t droppedFullRing = 0;
  uint64_t droppedInvalidValue = 0;
  uint64_t droppedBadTimestamp = 0;  // duplicated or backwards
  uint64_t droppedLate = 0;          // for a step already closed
  uint64_t droppedNoSlot = 0;        // more series than maxSeries
  uint64_t seriesRestarted = 0;      // after a gap longer than maxGapSteps
  uint64_t ticks = 0;
};

class Forecaster {
 public:
  static Parsed<std::unique_ptr<Forecaster>> create(const ForecasterConfig& config);
  ~Forecaster();
  Forecaster(const Forecaster&) = delete;
  Forecaster& operator=(const Forecaster&) = delete;

  // Producer side, any thread.
  SampleRing& ring(size_t index) { return *rings_[index]; }
  size_t ringCount() const { return rings_.size(); }

  // Forecaster thread only.
  // Takes the slot of the lowest released island if there is one, else a
  // new one (at most maxIslands islands at once), and returns the island's
  // id. A reused slot gets a new id: a reader that still holds the released
  // island's id reads no profile rather than its successor's.
  Parsed<uint32_t> defineIsland(const IslandSpec& spec);
  // Gives a defined island new members and capacity (a VM moved in or out).
  // Keep: the aggregate model keeps its history and season and sums the new
  // members from the next closed step on, so its level follows the move
  // within a few steps instead of restarting cold. Restart: the model starts
  // afresh and readers see no profile until its first publication, as for a
  // newly defined island. Checked as defineIsland; on error (or an unknown
  // or released id) nothing changes. Returns the island's id.
  Parsed<uint32_t> redefineIsland(uint32_t island, const IslandSpec& spec,
                                  IslandHistory history = IslandHistory::Keep);
  // Stops forecasting an island and frees its id for the next defineIsland;
  // readers see no profile for it from now on. False for an unknown or
  // already released id.
  bool releaseIsland(uint32_t island);
  void tick(int64_t nowNs);
  // Replaces `out` by the short-term forecast of every series of `metric`
  // that has had a sample, as of the last tick, in series order: one copy
  // of a table that each sample keeps current (no pass over the series, no
  // lookups). Nothing is published or asked for, so a caller on the
  // forecaster thread that wants every series each tick (the daemon's
  // forecast history) adds no per-sample publication to the tick, as
  // readShortTerm would (a series read every tick is republished every
  // tick).
  void shortTermsNow(Metric metric, std::vector<ShortTermForecast>& out) const;

  // Readers, any thread, never blocking the forecaster thread. readProfile
  // also asks for the series to be republished on each step for a while
  // (ForecasterConfig::watchSteps); check originStepNs for the profile's age.
  // readShortTerm likewise for each tick (watchTicks; lastSampleNs).
  bool readProfile(SeriesKey key, ProfileSnapshot& out) const;
  bool readShortTerm(SeriesKey key, ShortTermSnapshot& out) const;
  bool readIsland(uint32_t island, ProfileSnapshot& out) const;
  // Pressure of one workload against its allocations (per Metric; <= 0: none).
  std::optional<VmPressure> readVmPressure(
      uint32_t workload, const std::array<double, kMetricCount>& allocations) const;
  ForecasterCounters counters() const;
  // Any thread: islands defined and not released.
  size_t islandsInUse() const;

  const ForecasterConfig& config() const { return config_; }
  // Bytes held per series for models, resampling and publication.
  size_t bytesPerSeries() const;

 private:
  struct Series;
  struct Island;
  explicit Forecaster(const ForecasterConfig& config);
  Series* seriesFor(SeriesKey key);
  Series* addSeries(SeriesKey key);
  // The members' series slots (created as needed), after checking the spec.
  Parsed<std::vector<uint32_t>> memberSlots(const IslandSpec& spec);
  // shortTermDueTick: shortTermDueTick_, kept in a register while draining.
  void consume(const Sample& sample, uint64_t& shortTermDueTick);
  bool openStepFor(Series& series, int64_t timestampNs);
  void updateShortTerm(Series& series, double value, uint64_t& shortTermDueTick);
  // A series' first sample: its place in its metric's hand-out.
  void addHandOutEntry(Series& series);
  // Whether a reader asked for a publication since the last look (or one
  // asked for a series that had nothing new to publish yet): only then does
  // tick read the per-series request flags.
  bool requestsToCheck();
  // One pass over every series: closes the steps that the clock completed,
  // publishes what is due, and notes when the next short term falls due.
  void closeAndPublish(int64_t completedStep, bool checkRequests);
  static ShortTermForecast shortTermOf(const Series& series);
  void closeStep(Series& series);
  void publishProfile(Series& series);
  void publishShortTerm(Series& series);
  // checkRequests: whether to look at the readers' request flags (see
  // requestsToCheck).
  bool profileDue(Series& series, bool checkRequests);
  bool shortTermDue(Series& series, bool checkRequests);
  void publishIsland(Island& island, uint64_t stepIndex);
  // Replaces an island's publication by an empty one (steps = 0), which
  // readIsland reports as none.
  void withdrawIsland(const Island& island);
  // The defined island with this id, or null (unknown or released).
  Island* islandOf(uint32_t id);
  void fillProfile(const SeriesModel& model, uint64_t key, int64_t originStep,
                   ProfileSnapshot& snapshot);
  int64_t findSlot(uint64_t packedKey) const;

  ForecasterConfig config_;
  ModelShape shape_;
  std::vector<std::unique_ptr<SampleRing>> rings_;

  // Lock-free directory: open addressing, keys written once by the forecaster
  // thread (slot first, then key with release).
  std::unique_ptr<std::atomic<uint64_t>[]> directoryKeys_;
  std::unique_ptr<std::atomic<uint32_t>[]> directorySlots_;
  size_t directoryMask_ = 0;

  std::unique_ptr<SeqlockCell<ProfileSnapshot>[]> profiles_;
  // Per series slot: set by readers, cleared by the forecaster thread when
  // it services the request.
  std::unique_ptr<std::atomic<uint8_t>[]> profileRequested_;
  std::unique_ptr<SeqlockCell<ShortTermSnapshot>[]> shortTerms_;
  std::unique_ptr<std::atomic<uint8_t>[]> shortTermRequested_;
  // Set by a reader after it raised a request flag (release), taken by the
  // forecaster thread (acquire) before it reads the flags, so a tick with no
  // new request reads none of them.
  mutable std::atomic<uint8_t> requestsPosted_{0};
  std::unique_ptr<SeqlockCell<ProfileSnapshot>[]> islandProfiles_;
  std::atomic<uint32_t> islandCount_{0};  // ids ever handed out
  std::atomic<uint32_t> islandsInUse_{0};

  // Forecaster-thread state.
  std::vector<Series> series_;
  std::vector<Island> islands_;
  std::vector<Quantiles> scratch_;
  static constexpr int64_t kNoCompletedStep = INT64_MIN;
  Series* slotGuess_ = nullptr;  // seriesFor's first try (may be one past the last)
  uint64_t tickCount_ = 0;
  // What lets a tick skip the pass over all series: the pass closes every
  // step that the clock completed, so until the clock completes another one
  // only a step opened at or before it (closeScanDue_) needs closing; a
  // profile can only fall due when a model moved (modelsMoved_) or a reader
  // asked; a short term only at shortTermDueTick_ (the earliest
  // nextShortTermTick of the series with unpublished samples) or on a
  // reader's request.
  int64_t tickCompletedStep_ = kNoCompletedStep;
  int64_t closedThrough_ = kNoCompletedStep;
  bool closeScanDue_ = false;
  bool modelsMoved_ = false;
  bool requestsUnserviced_ = false;
  uint64_t shortTermDueTick_ = 0;
  // What shortTermsNow hands out for one metric, kept current by every
  // sample (an entry per series that has had a sample, in series order), so
  // the hand-out is one copy instead of a pass over every series' state.
  // Reserved for maxSeries entries on first use: entries never move but to
  // make room for a series that joins before others (a series created as an
  // island member gets its first sample later).
  struct HandOut {
    std::vector<ShortTermForecast> entries;
    std::vector<uint32_t> slots;  // each entry's series slot, ascending
  };
  // Indexed by the metric's byte, as samples are not checked for a known
  // metric.
  std::unique_ptr<HandOut[]> handOuts_;

  struct AtomicCounters {
    std::atomic<uint64_t> consumed{0}, invalidValue{0}, badTimestamp{0}, late{0}, noSlot{0},
        restarted{0}, ticks{0};
  } counters_;
};

}  // namespace Atoll::forecast
