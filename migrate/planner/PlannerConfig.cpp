#include "migrate/planner/PlannerConfig.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

namespace Atoll::planner {

namespace {

constexpr DonorRule kDonorRules[] = {DonorRule::Peak, DonorRule::ExpectedUnmet,
                                     DonorRule::PeakThenExpectedUnmet};

std::string bad(const char* field, double value, const char* rule) {
  char text[64];
  std::snprintf(text, sizeof text, "%g", value);
  return std::string("planner.") + field + " = " + text + ": " + rule;
}

}  // namespace

std::string_view donorRuleName(DonorRule rule) {
  switch (rule) {
    case DonorRule::Peak:
      return "peak";
    case DonorRule::ExpectedUnmet:
      return "expected-unmet";
    case DonorRule::PeakThenExpectedUnmet:
      return "peak-then-expected-unmet";
  }
  return "peak";
}

std::optional<DonorRule> parseDonorRule(std::string_view text) {
  for (DonorRule rule : kDonorRules)
    if (text == donorRuleName(rule)) return rule;
  return std::nullopt;
}

std::string donorRuleChoices() {
  std::string out;
  for (DonorRule rule : kDonorRules) {
    if (!out.empty()) out += ", ";
    out += donorRuleName(rule);
  }
  return out;
}

std::string PlannerConfig::validate() const {
  auto finite = [](double v) { return std::isfinite(v); };
  if (horizonSteps < 1 || horizonSteps > forecast::kMaxProfileSteps)
    return bad("horizon_steps", horizonSteps, "must be between 1 and 144");
  if (!finite(riskThreshold) || riskThreshold <= 0 || riskThreshold >= 1)
    return bad("risk_threshold", riskThreshold, "must be between 0 and 1 (exclusive)");
  if (!finite(headroom) || headroom < 1 || headroom > 2)
    return bad("headroom", headroom, "must be between 1 and 2");
  if (maxCpusPerResize < 1) return bad("max_cpus_per_resize", maxCpusPerResize, "must be >= 1");
  if (resizeQuantile != 95 && resizeQuantile != 99)
    return bad("resize_quantile", resizeQuantile, "must be 95 or 99");
  if (!finite(minReliefShare) || minReliefShare < 0 || minReliefShare > 1)
    return bad("min_relief_share", minReliefShare, "must be between 0 and 1");
  if (!finite(balanceBand) || balanceBand < 0 || balanceBand >= 1)
    return bad("balance_band", balanceBand, "must be in [0, 1)");
  if (!finite(minRiskP50Share) || minRiskP50Share < 0 || minRiskP50Share > 1)
    return bad("min_risk_p50_share", minRiskP50Share, "must be between 0 and 1");
  if (std::ranges::find(kDonorRules, donorRule) == std::end(kDonorRules))
    return "planner.donor_rule = " + std::to_string(int(donorRule)) + ": must be one of " +
           donorRuleChoices();
  if (!finite(minMoveCoverage) || minMoveCoverage < 0 || minMoveCoverage > 1)
    return bad("min_move_coverage", minMoveCoverage, "must be between 0 and 1");
  if (vmCandidatesPerIsland < 1)
    return bad("vm_candidates_per_island", vmCandidatesPerIsland, "must be >= 1");
  if (!finite(priorityWeight) || priorityWeight < 0)
    return bad("priority_weight", priorityWeight, "must be >= 0");
  if (!finite(defaultMigrationBytesPerSecond) || defaultMigrationBytesPerSecond <= 0)
    return bad("migration_bytes_per_second", defaultMigrationBytesPerSecond, "must be > 0");
  for (auto [name, value] :
       {std::pair{"cache_warmup_seconds_per_cpu", cacheWarmupSecondsPerCpu},
        std::pair{"vm_cache_warmup_seconds", vmCacheWarmupSeconds},
        std::pair{"resize_disruption_per_vm", resizeDisruptionPerVm},
        std::pair{"move_slowdown", moveSlowdown}, std::pair{"resize_action_cpu", resizeActionCpu},
        std::pair{"move_action_cpu", moveActionCpu}})
    if (!finite(value) || value < 0) return bad(name, value, "must be >= 0");
  if (!finite(minMargin) || minMargin < 0) return bad("min_margin", minMargin, "must be >= 0");
  if (!finite(maxMargin) || maxMargin < minMargin)
    return bad("max_margin", maxMargin, "must be >= min_margin");
  if (!finite(margin) || margin < minMargin || margin > maxMargin)
    return bad("margin", margin, "must lie within [min_margin, max_margin]");
  if (!finite(marginStep) || marginStep < 0) return bad("margin_step", marginStep, "must be >= 0");
  if (!finite(minTrust) || minTrust <= 0) return bad("min_trust", minTrust, "must be > 0");
  if (!finite(maxTrust) || maxTrust < minTrust || minTrust > 1 || maxTrust < 1)
    return bad("max_trust", maxTrust, "must be >= min_trust, with 1 between them");
  if (!finite(trustGain) || trustGain < 0 || trustGain > 1)
    return bad("trust_gain", trustGain, "must be between 0 and 1");
  if (!finite(outcomeTolerance) || outcomeTolerance < 0)
    return bad("outcome_tolerance", outcomeTolerance, "must be >= 0");
  if (minDwellNs < 0) return bad("min_dwell_ns", double(minDwellNs), "must be >= 0");
  if (islandCooldownNs < 0)
    return bad("island_cooldown_ns", double(islandCooldownNs), "must be >= 0");
  if (sameRoleCooldownNs < 0)
    return bad("same_role_cooldown_ns", double(sameRoleCooldownNs), "must be >= 0");
  if (budgetWindowNs <= 0) return bad("budget_window_ns", double(budgetWindowNs), "must be > 0");
  if (hostMovesPerWindow < 0)
    return bad("host_moves_per_window", hostMovesPerWindow, "must be >= 0");
  if (islandMovesPerWindow < 0)
    return bad("island_moves_per_window", islandMovesPerWindow, "must be >= 0");
  if (hysteresisWindowNs < 0)
    return bad("hysteresis_window_ns", double(hysteresisWindowNs), "must be >= 0");
  if (!finite(hysteresisFactor) || hysteresisFactor < 1)
    return bad("hysteresis_factor", hysteresisFactor, "must be >= 1");
  if (!finite(verifyLatencyTolerance) || verifyLatencyTolerance < 0)
    return bad("verify_latency_tolerance", verifyLatencyTolerance, "must be >= 0");
  if (!finite(verifyThroughputTolerance) || verifyThroughputTolerance < 0 ||
      verifyThroughputTolerance >= 1)
    return bad("verify_throughput_tolerance", verifyThroughputTolerance, "must be in [0, 1)");
  return {};
}

}  // namespace Atoll::planner
