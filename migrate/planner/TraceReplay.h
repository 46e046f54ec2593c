#pragma once
// Judges placement policies on real traces: a simulated host (SimulatedHost)
// whose VMs follow a TraceSet, one 5-minute step at a time. The real
// forecaster is fed through its sample ring exactly as the daemon feeds it
// and ticked at each step boundary; the `atoll` policy is the real Planner
// reading the forecaster's island profiles, `threshold` the reactive
// baseline (ThresholdPolicy), `static` never moves. All policies run in the
// same pass over the same VM demand, from the same initial placement
// (island = FNV-1a hash of the VM name, mixed with the host spec's seed
// when it has one, modulo the island count). `static`
// and `threshold` change only capacities; `atoll` also moves VMs between
// islands (the forecaster's island aggregates are redefined to follow), so
// each policy is scored on its own islands' demand.
//
// `atoll-hindsight` is a diagnostic bound, never a policy to deploy: the same
// Planner and rules as `atoll` (its own instance, so its own cooldowns,
// budgets and outcome loop), fed profiles built from the trace's actual
// future demand instead of the forecaster's (p50 = p95 = p99 = the demand of
// the island's current members, or of the VM, at each step of the profile).
// What it leaves of overload is what the rules, guards and budgets leave with
// a perfect forecast; the gap between it and `atoll` is the forecast's share.
//
// Scored from `warmupSteps` on (policies act from then; the forecaster
// learns from step 0): overload time (VM-minutes in islands whose demand
// exceeds capacity), overload depth ((demand - capacity) / capacity),
// unmet core-minutes, actions and the CPU-seconds they cost (the planner's
// own cost model, applied to every policy's resizes alike; a VM move costs
// its pages at the planner's migration rate, its cache warm-up and the
// slowdown while it moves).
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "migrate/planner/PlannerConfig.h"
#include "migrate/planner/SimulatedHost.h"
#include "migrate/planner/ThresholdPolicy.h"
#include "migrate/planner/TraceSet.h"
#include "util/Result.h"

namespace Atoll::planner {

enum class ReplayPolicy { Static, Threshold, Atoll, AtollHindsight };
std::string_view policyName(ReplayPolicy policy);
// "atoll,threshold,static" (or atoll-hindsight); errors name the bad item.
Result<std::vector<ReplayPolicy>> parsePolicies(std::string_view text);

struct ReplayOptions {
  HostSpec host;
  std::vector<ReplayPolicy> policies{ReplayPolicy::Atoll, ReplayPolicy::Threshold,
                                     ReplayPolicy::Static};
  PlannerConfig planner = [] {
    PlannerConfig c;
    c.mode = Mode::Enforce;
    return c;
  }();
  // Resident memory of a VM whose trace has none (PlanetLab): what a move
  // of it copies between nodes.
  double defaultVmMemoryBytes = 4.0 * (1ULL << 30);
  ThresholdConfig threshold;
  // The forecaster's learning rate of the recent p95 (its default when
  // unset): replays with another calibration show whether the planner's
  // result depends on it.
  std::optional<double> forecastRecentQuantileRate;
  size_t warmupSteps = 288;
  // Called now and then with a line of progress (long runs).
  std::function<void(const std::string&)> progress;
};

struct ReplayAction {
  size_t step = 0;
  std::string from, to;
  unsigned cpus = 0;
  std::string vm;  // a VM move: the VM moved (cpus is 0)
  double costCoreSeconds = 0;
  std::string reason;
};

// How well the island profiles a planner policy read covered the demand
// that came, over the island's members at the time of the pass and against
// its capacity then. For one horizon k: the profile's quantiles k steps
// ahead vs the demand k steps later; for the peak: the profile's highest
// p50/p95/p99 over the planning horizon (what the risk and the resize
// sizing read) vs the highest demand over the same steps.
struct QuantileCoverage {
  int horizon = 0;     // steps ahead (for the peak: the planning horizon)
  size_t samples = 0;  // island-steps whose outcome was in the trace
  // Shares of samples whose actual demand was at most the quantile.
  double coveredP50 = 0, coveredP95 = 0, coveredP99 = 0;
  // Means of (quantile - actual) / capacity: how far above the demand the
  // upper quantiles sat (negative: below it).
  double meanP95Gap = 0, meanP99Gap = 0;
};

struct IslandCalibration {
  std::vector<QuantileCoverage> horizons;  // 1, 3, 6, 12, 24 steps, as far as profiles reach
  QuantileCoverage peak;
  // The same over the island-steps the planner can see at risk at all:
  // those whose p50 (for the peak, p50 peak) was at least its
  // minRiskP50Share of capacity (one entry per entry of `horizons`, its
  // samples possibly none).
  std::vector<QuantileCoverage> loadedHorizons;
  QuantileCoverage loadedPeak;
  // Passes that saw an island's P(demand > capacity) below the risk
  // threshold at every step of the horizon, and the share of them after which the
  // island's demand did exceed that capacity within the horizon.
  size_t quietPasses = 0;
  double quietThenOverloaded = 0;
};

struct PolicyReport {
  ReplayPolicy policy = ReplayPolicy::Static;
  double overloadVmMinutes = 0;
  double overloadIslandMinutes = 0;
  double unmetCoreMinutes = 0;
  double meanDepth = 0;  // over overloaded island-steps
  double maxDepth = 0;
  double moveCpuSeconds = 0;
  size_t vmMoves = 0;
  std::vector<ReplayAction> actions;
  std::vector<std::vector<float>> capacity;  // [island][step]
  std::vector<std::vector<float>> demand;    // [island][step], cores, under this policy's placement
  // Planner policies (atoll, atoll-hindsight) only: for each overloaded
  // island-step, the verdict of the policy's planning pass just before it on
  // that island (a rule name, or "none" when the
  // island was not at risk), so the rules that left overload in place show.
  std::map<std::string, size_t> overloadAfterVerdict;
  // Planner policies only: per island and step, the verdict of the planning
  // pass that set the capacity in force during that step (the pass at the end
  // of the step before; "none" before the first pass), as an index into
  // verdictNames, so verdicts line up with the capacity and demand arrays.
  std::vector<std::string> verdictNames;
  std::vector<std::vector<uint8_t>> verdicts;  // [island][step]
  // `atoll` only: the calibration of the island profiles its passes read.
  std::optional<IslandCalibration> islandCalibration;
  // Planner policies only: the outcome loop's final state.
  double finalMargin = 0;
  size_t tuningChanges = 0;
};

struct ReplayReport {
  std::string source;
  std::string host;
  size_t steps = 0;
  size_t warmupSteps = 0;
  size_t vmCount = 0;
  std::vector<std::string> islands;
  std::vector<size_t> vmsPerIsland;
  std::vector<std::vector<float>> demand;  // [island][step], cores, initial placement
  std::vector<PolicyReport> policies;
  double seconds = 0;  // wall time is measured by the caller; 0 here
};

Result<ReplayReport> runTraceReplay(const TraceSet& traces, const ReplayOptions& options);

std::string formatReplayReport(const ReplayReport& report);
// With each island's demand and each policy's capacity and demand per step
// (cores), and for planner policies each island's verdict per step
// ("verdict_names", and "verdicts" [island][step] as indexes into it), for
// analysing where policies differ; for `atoll` its "island_calibration".
nlohmann::json toJson(const ReplayReport& report);
// Per island: demand and each policy's capacity over time, actions marked.
std::string renderReplaySvg(const ReplayReport& report);

uint64_t fnv1a(std::string_view text);
// What the replay places VMs by: fnv1a(text) for seed 0, else that hash and
// the seed mixed (every seed a different order of VMs and map of islands).
uint64_t seededHash(std::string_view text, uint64_t seed);

}  // namespace Atoll::planner
