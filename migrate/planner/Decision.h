#pragma once
// A planner decision and its explanation: what it would do, what it predicts
// that to gain and cost, the inputs it read, the rule that decided, and
// whether it was taken. Declined decisions are recorded the same way, so an
// operator can always see why something did not move.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "numa/Topology.h"
#include "util/Result.h"

namespace Atoll::planner {

enum class ActionKind { None, ResizeIsland, MoveVm };
std::string_view actionName(ActionKind kind);  // "none", "resize-island", "move-vm"

// The rule that settled a decision.
enum class Rule {
  BenefitExceedsCost,  // taken: benefit > cost * (1 + margin)
  BelowMargin,         // declined: the gain does not pay for the move
  NoRisk,              // nothing to do: no island heads for contention
  NoDonor,             // declined: no island has slack to give, no VM can go
  Dwell,               // declined: the VM moved too recently
  HostBudget,          // declined: the host's move budget for the window is spent
  IslandBudget,        // declined: an island's move budget for the window is spent
  Hysteresis,          // declined: reverses a recent decision without the larger gain
  InFlight,            // declined: conflicts with an action still in flight
  Revert,              // taken: post-move verification found the move made things worse
  Cooldown,            // declined: an island it touches was changed too recently
  SmallRelief,         // declined: relieves too little of the island's predicted overload
  StaleForecast,       // declined: the VM's recent forecast errors are too large to move it on
};
std::string_view ruleName(Rule rule);

// The forecast the decision read for one island, over the planning horizon.
struct IslandView {
  std::string island;
  double capacityBefore = 0;
  double capacityAfter = 0;
  double p50Peak = 0;  // highest p50 demand over the horizon, cores
  double p95Peak = 0;
  double contentionBefore = 0;  // P(demand > capacity), max over the horizon
  double contentionAfter = 0;
  double overloadBefore = 0;  // expected core-seconds of unmet demand over the horizon
  double overloadAfter = 0;
  double trust = 1;  // the planner's trust in this island's forecast
};

// Every cost in core-seconds, the unit of the benefit.
struct CostBreakdown {
  double pageMigration = 0;  // bytes / rate, charged as one core busy copying
  double cacheWarmup = 0;    // caches refilled on the CPUs or node that changed
  double disruption = 0;     // the VMs' slowdown while the change happens
  double actionCpu = 0;      // the planner's own control writes
  double total() const { return pageMigration + cacheWarmup + disruption + actionCpu; }
};

struct Decision {
  uint64_t id = 0;  // unique per planner, increasing
  int64_t atNs = 0;
  ActionKind action = ActionKind::None;
  std::string fromIsland;        // donor (resize) or source (move)
  std::string toIsland;          // receiver (resize) or target (move)
  numa::CpuList cpusMoved;       // resize: CPUs that change island
  numa::CpuList targetMemNodes;  // move: where the VM's memory goes
  uint32_t vm = 0;               // move: workload id
  std::string vmName;
  uint64_t vmResidentBytes = 0;

  // benefit: contention avoided over the horizon (probability x depth x
  // duration, summed per step), weighted by priority and trust.
  double benefit = 0;
  CostBreakdown cost;
  double margin = 0;          // required benefit > cost * (1 + margin)
  double horizonSeconds = 0;  // how far ahead the benefit is counted
  int firstRiskStep = -1;     // first step at risk (1-based), -1 when none

  Rule rule = Rule::NoRisk;
  bool taken = false;
  bool execute = false;              // taken and the island's mode is enforce
  std::string reason;                // one line for people
  std::optional<uint64_t> reverses;  // decision this one undoes, if any

  std::vector<IslandView> islands;  // receiver first, then donor/target
};

struct PlanResult {
  int64_t nowNs = 0;
  std::vector<Decision> decisions;  // taken and declined, in decision order
  // Convenience: the decisions to execute (ids into `decisions`).
  std::vector<uint64_t> toExecute() const;
};

// How the outcome loop changed the planner's tuning, and why.
struct TuningRecord {
  int64_t atNs = 0;
  uint64_t decision = 0;
  std::string island;  // empty for host-wide values
  std::string field;   // "margin" or "trust"
  double before = 0;
  double after = 0;
  double predicted = 0;  // relief predicted, core-seconds
  double realised = 0;   // relief measured
  std::string reason;
};

nlohmann::json toJson(const IslandView& view);
nlohmann::json toJson(const CostBreakdown& cost);
nlohmann::json toJson(const Decision& decision);
// An executed action back from toJson's record (a journal written before a
// restart): what the guards read (id, time, action, islands, CPUs moved, VM,
// what it reverses) and what its outcome is measured by (horizon, island
// views, where the record has them), taken and executed. Anything else of
// the record is left out; a record that is no action, or lacks or mistypes
// one of those fields, is an error naming the field.
Result<Decision> executedActionFromJson(const nlohmann::json& record);
nlohmann::json toJson(const PlanResult& result);
nlohmann::json toJson(const TuningRecord& record);

}  // namespace Atoll::planner
