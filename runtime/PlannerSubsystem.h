#pragma once
// The planner subsystem (plan and act phases). Plan: gathers the planner's
// input from the forecaster's island and VM profiles, the desired islands
// (configuration overlaid by desired state) with the shared island holding
// the CPUs no island claims, and the telemetry board; runs one planner pass
// whenever a new forecast step is published (the profiles change only then),
// keeps the latest pass and a bounded history, journals every decision record
// as a fact and counts it in Prometheus. A pass where no island heads for
// contention still says so, per island, as a "no action" record. Act: only
// taken decisions in an enforce-mode island run, as changes of the desired
// state that the islands subsystem then applies: a resize rewrites the
// desired islands, a VM move writes the VM's pin ("pins/NAME" = {"island":
// TARGET, "source": "planner"}); their completion or failure goes back to
// the planner. Verification: every tick samples the telemetry board (run-
// queue latency and CPU cores per workload); one forecast step after an
// executed action, the window after it is compared with the window before
// it for the workloads it touched, and a revert the planner proposes runs
// through the same path.
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/registry.h>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "migrate/planner/Planner.h"
#include "runtime/Config.h"
#include "runtime/ForecastSubsystem.h"
#include "runtime/StateStore.h"
#include "runtime/Subsystem.h"
#include "runtime/WorkloadBoard.h"

namespace Atoll {

// Facts keys of the journaled decision records: a ring of kPlannerHistory slots.
inline constexpr std::string_view kPlannerDecisionPrefix = "planner/decisions/";
inline constexpr size_t kPlannerHistory = 256;
// Facts keys of the executed actions alone, a ring of kPlannerActionHistory
// slots: every pass journals a record per island, so the decision ring can
// turn over within the guards' windows on a host with many islands, while
// the guards must outlive a restart (a daemon that restarts, or crash-loops,
// would otherwise act again at once on islands and VMs it just changed).
inline constexpr std::string_view kPlannerActionPrefix = "planner/actions/";
inline constexpr size_t kPlannerActionHistory = 256;
// Facts key of the outcome loop's tuning (margin, per-island trust and the
// relief behind them), overwritten whenever the loop changes it, so that
// what a host learnt about its forecasts outlives a restart.
inline constexpr std::string_view kPlannerTuningKey = "planner/tuning";
// Facts keys of the outcome windows still open, one per executed action
// (the suffix is its decision id), written as telemetry covers each
// twentieth of the window and removed when the outcome is recorded or
// dropped: a restart in the middle of a window goes on measuring it instead
// of losing it.
inline constexpr std::string_view kPlannerOutcomePrefix = "planner/outcomes/";

class PlannerSubsystem final : public Subsystem {
 public:
  using SettingsSource = std::function<PlannerSettings()>;
  using IslandSource = std::function<std::vector<IslandSettings>()>;

  // `settings` gives the [planner] table at each pass (mode and per-island
  // overrides follow reloads; the other knobs are those at creation).
  static Result<std::shared_ptr<PlannerSubsystem>> create(
      SettingsSource settings, const ForecastSubsystem& forecast, const WorkloadBoard& board,
      IslandSource configured, StateStore& store, prometheus::Registry& registry,
      unsigned hostCpus);

  std::string_view name() const override { return "planner"; }
  bool runsIn(Phase phase) const override { return phase == Phase::Plan || phase == Phase::Act; }
  Result<void> runPhase(Phase phase, const TickContext& context) override;
  nlohmann::json describe() const override;

  // The phases at `nowNs` (realtime), as runPhase does them.
  Result<void> planAt(int64_t nowNs);
  Result<void> actAt(int64_t nowNs);

  // Any thread (GET /v1/plan, /v1/plan/history, /v1/plan/tuning). planJson()
  // is null before the first pass.
  nlohmann::json planJson() const;
  nlohmann::json historyJson() const;
  nlohmann::json tuningJson() const;

  // The outcome loop's entry: the relief measured over the window after an
  // executed action. When it changes the margin or a trust, the tuning is
  // journaled. Returns the tuning records added.
  std::vector<planner::TuningRecord> recordOutcome(uint64_t decision, double realisedRelief,
                                                   int64_t nowNs);

 private:
  PlannerSubsystem(planner::Planner planner, SettingsSource settings,
                   const ForecastSubsystem& forecast, const WorkloadBoard& board,
                   IslandSource configured, StateStore& store, prometheus::Registry& registry,
                   unsigned hostCpus);
  struct Gathered {
    planner::PlanInput input;
    nlohmann::json islands = nlohmann::json::array();  // every island, planned or not, and why
    std::string passKey;                               // changes when a new step is published
  };
  Result<Gathered> gather(int64_t nowNs, const PlannerSettings& settings) const;
  std::vector<planner::Decision> noActionRecords(const Gathered& gathered) const;
  void record(const planner::Decision& decision, planner::Mode mode);
  // Journals an executed action (or one whose execution failed) in the
  // action ring.
  void recordAction(const planner::Decision& decision, bool failed, int64_t nowNs);
  // Gives the planner and the dwell guard the actions journaled before this
  // start, and continues both rings after their newest records.
  void restoreFromJournal();
  // Puts back the journaled tuning, within the bounds and islands of this
  // configuration; a record that cannot be read is logged, counted and
  // left for the defaults.
  void restoreTuning();
  // Puts back the outcome windows open at the restart, for the actions the
  // planner restored; a record that cannot be read, or whose action is not
  // known, is logged, counted and removed.
  void restoreOutcomes();
  // Stores one record in a ring's slot, or under its own key; a failure is
  // logged, not fatal.
  void journal(std::string_view prefix, uint64_t slot, const nlohmann::json& entry);
  void journal(const std::string& key, const nlohmann::json& entry);
  std::vector<planner::TuningRecord> recordOutcomeLocked(uint64_t decision, double realisedRelief,
                                                         int64_t nowNs);
  Result<void> execute(const planner::Decision& decision, int64_t nowNs);

  // Verification of executed actions against telemetry.
  struct Sample {
    int64_t atNs = 0;
    std::optional<double> runQueueLatencyNs;
    std::optional<double> cores;
  };
  struct Verification {
    uint64_t decision = 0;
    int64_t executedNs = 0;
    std::vector<uint32_t> workloads;  // the VMs the action touched
  };
  struct Window {
    double runQueueLatencyNs = 0;  // mean over the samples that have it; 0: none
    double cores = 0;              // sum over the workloads of their mean cores
    size_t samples = 0;
  };
  void sampleTelemetry(int64_t nowNs);
  Window measure(const std::vector<uint32_t>& workloads, int64_t fromNs, int64_t toNs) const;
  void verifyDue(int64_t nowNs, const planner::PlanInput& input);

  // The outcome loop's measurement: after an executed action, the relief it
  // brought, measured from telemetry as the trace replay measures it (core-
  // seconds of demand beyond the old capacity that the action made room
  // for), over the horizon its benefit was predicted for.
  struct PendingOutcome {
    planner::Decision decision;
    int64_t fromNs = 0;
    int64_t untilNs = 0;
    int64_t lastNs = 0;      // measured up to here
    double realised = 0;     // core-seconds
    int64_t measuredNs = 0;  // of the window, what telemetry covered
    // Restored after a restart: measuring goes on from the first telemetry
    // after it, so the time the daemon was down is not counted.
    bool resumed = false;
    int64_t journaledNs = 0;  // lastNs when it was last journaled
  };
  void journalOutcome(PendingOutcome& outcome);
  void forgetOutcome(uint64_t decision);
  // Relief per second at this input's telemetry; NaN when an island the
  // action touched is gone.
  static double reliefRate(const planner::Decision& decision, const planner::PlanInput& input);
  void accrueOutcomes(int64_t nowNs, const planner::PlanInput& input);
  std::vector<uint32_t> touchedBy(const planner::Decision& decision) const;

  SettingsSource settings_;
  const ForecastSubsystem& forecast_;
  const WorkloadBoard& board_;
  IslandSource configured_;
  StateStore& store_;
  unsigned hostCpus_;
  prometheus::Family<prometheus::Counter>* decisionsTotal_;

  mutable std::mutex mutex_;  // the planner and the views below; the API reads them
  planner::Planner planner_;
  std::string lastPassKey_;
  uint64_t passes_ = 0;
  uint64_t recorded_ = 0;
  // The journal ring's next slot: after the newest record, across restarts.
  uint64_t nextSlot_ = 0;
  uint64_t nextActionSlot_ = 0;
  size_t restoredActions_ = 0;
  bool tuningRestored_ = false;
  uint64_t tuningRecordsRefused_ = 0;
  uint64_t executed_ = 0;
  uint64_t executionFailures_ = 0;
  std::string lastJournalError_;
  std::optional<Gathered> lastInput_;
  nlohmann::json latest_;                   // the latest pass
  std::deque<nlohmann::json> history_;      // decision records, newest last
  std::vector<planner::Decision> pending_;  // taken with execute, not yet run

  int64_t verifyWindowNs_;                          // one forecast step
  int64_t lastSampleNs_ = 0;                        // the board report last sampled
  std::map<uint32_t, std::deque<Sample>> samples_;  // by workload, oldest first
  std::vector<Verification> verifying_;             // executed, window not over yet
  std::map<std::string, int64_t> lastMoveNs_;       // by VM name, for the dwell guard
  uint64_t verified_ = 0;
  uint64_t reverts_ = 0;
  std::vector<PendingOutcome> measuring_;
  int64_t outcomesSampledNs_ = 0;  // the board report outcomes last measured
  uint64_t outcomesRecorded_ = 0;
  uint64_t outcomesDropped_ = 0;  // an island gone, or too little telemetry
  uint64_t outcomesRestored_ = 0;
  uint64_t outcomeRecordsRefused_ = 0;
  nlohmann::json lastOutcome_;  // null before the first
};

}  // namespace Atoll
