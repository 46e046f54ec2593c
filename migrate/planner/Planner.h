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

class Planner {
 public:
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

  // Outcome loop: the relief (core-seconds of contention avoided) measured
  // over the window after the action. The relieved island's trust becomes
  // its exponentially weighted realised/predicted relief, and the margin
  // steps up (or down) while the host's weighted ratio is below (above) 1 by
  // more than the tolerance; both bounded. Returns the tuning records added.
  std::vector<TuningRecord> recordOutcome(uint64_t decision, double realisedRelief, int64_t nowNs);

  // Post-move verification: when the action made things worse than before,
  // proposes its reversal. The revert passes the budgets and the in-flight
  // check like any action (the moved VM's dwell does not hold it back) and
  // is recorded as decided by Rule::Revert; nothing when the move helped or
  // the guards refuse (then the declined revert is in history()).
  std::optional<Decision> verify(const MoveVerification& measured, const PlanInput& input);

  // The island mode in force (per-island override, else the planner's).
  Mode modeOf(const IslandState& island) const;
  void setMode(Mode mode) { config_.mode = mode; }

  double margin() const { return margin_; }
  double trust(const std::string& island) const;
  const std::vector<TuningRecord>& tuning() const { return tuning_; }
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
  // Exponentially weighted realised and predicted relief (outcome loop).
  struct Relief {
    double realised = 0;
    double predicted = 0;
    uint64_t outcomes = 0;
  };
  std::map<std::string, Relief> islandRelief_;
  Relief hostRelief_;
  std::map<uint64_t, Executed> executed_;  // by decision id, bounded
  std::deque<Decision> history_;
  std::vector<TuningRecord> tuning_;
  uint64_t nextId_ = 1;
};

}  // namespace Atoll::planner
