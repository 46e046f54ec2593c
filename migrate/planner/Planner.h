#pragma once
// The single-host planner: every pass reads the islands' and VMs' forecast
// profiles and decides whether resizing an island (CPUs from one with slack to
// one heading for contention) or moving a VM to another island avoids more
// contention over the horizon than the move costs, by a margin. Guards stop
// thrashing: a minimum dwell per VM, a cooldown per island after an action,
// move budgets per window for the host and per island, hysteresis against
// reversing a recent decision, and never two conflicting actions in flight.
// Outcomes reported back tune the margin and the per-island trust in the
// forecast, within bounds, with a record of each change. Pure decision
// logic: no I/O, no clock (time comes in the input), deterministic for the
// same input and history.
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "migrate/planner/Decision.h"
#include "migrate/planner/PlanInput.h"
#include "migrate/planner/PlannerConfig.h"
#include "util/Result.h"

namespace Atoll::planner {

// What was measured on a moved VM (or a resized island's VMs) before and
// after the action, for post-move verification.
struct MoveVerification {
  uint64_t decision = 0;
  int64_t nowNs = 0;
  double runQueueLatencyBeforeNs = 0;
  double runQueueLatencyAfterNs = 0;
  double throughputBefore = 0;  // any rate the caller measures (e.g. CPU-seconds per second)
  double throughputAfter = 0;
};

// Exponentially weighted realised and predicted relief (core-seconds) of
// the outcome loop, and how many outcomes went into them.
struct OutcomeRelief {
  double realised = 0;
  double predicted = 0;
  uint64_t outcomes = 0;
};

// What the outcome loop has learnt, as journaled to outlive a restart: the
// margin, the per-island trust, the weighted relief behind them (without it
// the first outcome after a restart would outweigh all those before), and
// how many tuning changes led there.
struct TuningState {
  double margin = 0;
  std::map<std::string, double> trust;
  std::map<std::string, OutcomeRelief> islandRelief;
  OutcomeRelief hostRelief;
  uint64_t changes = 0;
};
nlohmann::json toJson(const TuningState& state);
// A tuning state back from toJson's record; a missing or mistyped field, a
// value that is not finite or a negative predicted relief is an error
// naming the field.
Result<TuningState> tuningStateFromJson(const nlohmann::json& record);

// What restoreTuning changed on the way in: values clamped to the bounds in
// force, islands dropped because they are no longer known.
struct TuningRestore {
  bool marginClamped = false;
  std::vector<std::string> trustClamped;
  std::vector<std::string> droppedIslands;
};

class Planner {
 public:
  // Tuning records kept for tuning() and tuningJson(): a daemon running for
  // months makes changes without end, and sends the list on every request.
  static constexpr size_t kTuningLimit = 256;

  // Fails, naming the field and value, when the configuration is invalid.
  static Result<Planner> create(const PlannerConfig& config);

  // One planning pass. Taken decisions in an enforce-mode island come back
  // with execute = true and are in flight from then on, until the caller
  // reports them completed or failed.
  PlanResult plan(const PlanInput& input);

  // The caller's execution reports. Unknown ids are ignored (a decision
  // from before a restart).
  void reportCompleted(uint64_t decision, int64_t nowNs);
  void reportFailed(uint64_t decision, int64_t nowNs);
  std::vector<uint64_t> inFlight() const;

  // An action executed before a restart (the caller's journal), settled:
  // cooldowns, budgets and hysteresis count it as if this planner had taken
  // it, no outcome is expected for it, and new decision ids go on after its
  // id. Call before the first pass.
  void restoreExecuted(const Decision& action, bool failed);
  // A restored action whose outcome window was still open at the restart:
  // its outcome is expected after all. False for an action this planner
  // does not know, or one that failed.
  bool reopenOutcome(uint64_t decision);

  // Outcome loop: the relief (core-seconds of contention avoided) measured
  // over the window after the action. The relieved island's trust becomes
  // its exponentially weighted realised/predicted relief, and the margin
  // steps up (or down) while the host's weighted ratio is below (above) 1 by
  // more than the tolerance; both bounded. Returns the tuning records added.
  std::vector<TuningRecord> recordOutcome(uint64_t decision, double realisedRelief, int64_t nowNs);

  // The outcome loop's state, and tuning journaled before a restart put
  // back within this configuration: the margin and every trust clamped to
  // the bounds in force, islands not in `islands` dropped. A state with a
  // value that is not finite, or a negative predicted relief, is refused
  // and nothing changes. Call before the first pass.
  TuningState tuningState() const;
  Result<TuningRestore> restoreTuning(const TuningState& state,
                                      const std::set<std::string>& islands);

  // Post-move verification: when the action made things worse than before,
  // proposes its reversal. The revert passes the budgets and the in-flight
  // check like any action (the moved VM's dwell does not hold it back) and
  // is recorded as decided by Rule::Revert; nothing when the move helped or
  // the guards refuse (then the declined revert is in history()).
  // Refused, with nothing proposed nor recorded in history(): a
  // verification of a decision this planner did not execute (unknown, or
  // its execution failed), and a revert that would name an island or VM
  // absent from the input. Refusals are counted, the latest explained.
  std::optional<Decision> verify(const MoveVerification& measured, const PlanInput& input);
  uint64_t verificationsRefused() const { return verificationsRefused_; }
  const std::string& lastVerificationRefusal() const { return lastVerificationRefusal_; }

  // The island mode in force (per-island override, else the planner's).
  Mode modeOf(const IslandState& island) const;
  void setMode(Mode mode) { config_.mode = mode; }

  double margin() const { return margin_; }
  double trust(const std::string& island) const;
  // The most recent tuning changes since this planner started, newest last
  // (at most kTuningLimit).
  const std::deque<TuningRecord>& tuning() const { return tuning_; }
  // Tuning changes since the planner first ran, those before a restart too.
  uint64_t tuningChanges() const { return tuningChanges_; }
  // Of those, the changes made before a restart (restoreTuning), which
  // tuning() does not hold.
  uint64_t tuningChangesRestored() const { return tuningChangesRestored_; }
  // Recent decisions, taken and declined, newest last (bounded).
  const std::deque<Decision>& history() const { return history_; }
  std::optional<Decision> find(uint64_t decision) const;
  const PlannerConfig& config() const { return config_; }

  nlohmann::json tuningJson() const;

 private:
  explicit Planner(const PlannerConfig& config);
  struct Pass;
  struct Executed {
    Decision decision;
    bool inFlight = true;
    int64_t completedNs = kNeverNs;
    bool outcomeRecorded = false;
    bool failed = false;
  };
  void remember(const Decision& decision);
  void trimExecuted();
  bool conflictsInFlight(const Decision& decision, uint64_t& with) const;
  int movesInWindow(int64_t nowNs, const std::string* island) const;
  const Executed* reversedBy(const Decision& decision, int64_t nowNs) const;
  void applyGuards(Decision& decision, int64_t nowNs, bool isRevert);
  void take(Decision& decision, Mode mode);

  PlannerConfig config_;
  double margin_;
  std::map<std::string, double> trust_;
  std::map<std::string, OutcomeRelief> islandRelief_;
  OutcomeRelief hostRelief_;
  uint64_t tuningChanges_ = 0;
  uint64_t tuningChangesRestored_ = 0;
  std::map<uint64_t, Executed> executed_;  // by decision id, bounded
  std::deque<Decision> history_;
  std::deque<TuningRecord> tuning_;
  uint64_t nextId_ = 1;
  uint64_t verificationsRefused_ = 0;
  std::string lastVerificationRefusal_;
};

}  // namespace Atoll::planner
