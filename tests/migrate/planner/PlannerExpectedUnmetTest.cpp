// The expected-unmet donor rule: an island gives k CPUs to one at risk when
// the receiver's expected unmet demand avoided, less the donor's added, pays
// for the resize, whether or not the donor has a whole CPU beyond its p95
// peak. Constructed forecasts, no root.
#include <gtest/gtest.h>

#include "migrate/planner/Contention.h"
#include "migrate/planner/Planner.h"
#include "tests/migrate/planner/PlannerFixtures.h"

namespace Atoll::planner {
namespace {

using namespace testing;

PlannerConfig expectedUnmet() {
  PlannerConfig config = enforcing();
  config.donorRule = DonorRule::ExpectedUnmet;
  return config;
}

// Expected unmet core-seconds of a flat profile at `capacity` over 12 steps.
double unmetOver12(double p50, double p95, double p99, double capacity) {
  return 12 * 300 * expectedUnmetDemand({p50, p95, p99}, capacity);
}

// "hot" (8 CPUs) is short by about a core; "tight" (8 CPUs) keeps its p95
// peak 7.0 x 1.05 = 7.35 cores, so it has no whole CPU to spare by its peak,
// but at 7 CPUs only its tail above p95 goes unmet.
PlanInput hotAndTight() {
  PlanInput in;
  in.nowNs = 1000 * kStepNs;
  in.islands.push_back(island("hot", cpuRange(0, 8), flatProfile(9, 10.5, 11)));
  in.islands.push_back(island("tight", cpuRange(8, 8), flatProfile(5, 7.0, 7.3)));
  in.host.nodes = {{0, cpuRange(0, 16)}};
  return in;
}

TEST(PlannerExpectedUnmet, PeakRuleFindsNoDonorWithoutAWholeCpuBeyondThePeak) {
  PlannerConfig config = enforcing();
  config.donorRule = DonorRule::Peak;
  Planner planner = makePlanner(config);
  PlanResult result = planner.plan(hotAndTight());
  ASSERT_EQ(result.decisions.size(), 1u);
  EXPECT_EQ(result.decisions[0].rule, Rule::NoDonor) << result.decisions[0].reason;
  EXPECT_FALSE(result.decisions[0].taken);
}

TEST(PlannerExpectedUnmet, DonorWhoseUnmetBarelyGrowsGivesACpu) {
  // The premise: one CPU less barely adds to the donor's expected unmet
  // demand, while one CPU more removes half of the receiver's.
  const double harm = unmetOver12(5, 7.0, 7.3, 7) - unmetOver12(5, 7.0, 7.3, 8);
  const double relief = unmetOver12(9, 10.5, 11, 8) - unmetOver12(9, 10.5, 11, 9);
  ASSERT_LT(harm, 0.05 * relief);

  Planner planner = makePlanner(expectedUnmet());
  PlanResult result = planner.plan(hotAndTight());
  ASSERT_EQ(result.decisions.size(), 1u);
  const Decision& d = result.decisions[0];
  ASSERT_TRUE(d.taken) << d.reason;
  EXPECT_TRUE(d.execute);
  EXPECT_EQ(d.action, ActionKind::ResizeIsland);
  EXPECT_EQ(d.fromIsland, "tight");
  EXPECT_EQ(d.toIsland, "hot");
  // A second CPU would add far more to the donor (its p50-p95 range) than
  // it removes from the receiver per core-second of cost: one is the best
  // net relief per cost.
  EXPECT_EQ(d.cpusMoved.size(), 1u);
  ASSERT_EQ(d.islands.size(), 2u);
  EXPECT_NEAR(d.islands[0].overloadBefore - d.islands[0].overloadAfter, relief, 1e-6 * relief);
  EXPECT_NEAR(d.islands[1].overloadAfter - d.islands[1].overloadBefore, harm, 1e-6 * relief);
  EXPECT_NEAR(d.benefit, relief - harm, 1e-6 * relief);
}

// "hot" is just at risk (its p95 0.2 cores above capacity); "busy" has 8
// CPUs for a p50 of 7.2: a CPU less puts its median demand above capacity.
PlanInput hotAndBusy() {
  PlanInput in;
  in.nowNs = 1000 * kStepNs;
  in.islands.push_back(island("hot", cpuRange(0, 8), flatProfile(7, 8.2, 8.6)));
  in.islands.push_back(island("busy", cpuRange(8, 8), flatProfile(7.2, 7.9, 8.2)));
  in.host.nodes = {{0, cpuRange(0, 16)}};
  return in;
}

TEST(PlannerExpectedUnmet, DonorWhoseRiskGrowsMoreThanTheReceiversFallsGivesNone) {
  const double harm = unmetOver12(7.2, 7.9, 8.2, 7) - unmetOver12(7.2, 7.9, 8.2, 8);
  const double relief = unmetOver12(7, 8.2, 8.6, 8) - unmetOver12(7, 8.2, 8.6, 9);
  ASSERT_GT(relief, 0);
  ASSERT_GT(harm, relief);

  for (double share : {0.5, 0.0}) {  // with and without the relief share
    PlannerConfig config = expectedUnmet();
    config.minReliefShare = share;
    Planner planner = makePlanner(config);
    PlanResult result = planner.plan(hotAndBusy());
    ASSERT_EQ(result.decisions.size(), 1u);
    const Decision& d = result.decisions[0];
    EXPECT_FALSE(d.taken) << d.reason;
    EXPECT_EQ(d.toIsland, "hot");
    EXPECT_EQ(d.fromIsland, "busy");
    EXPECT_LT(d.benefit, 0);
    EXPECT_EQ(d.rule, share > 0 ? Rule::SmallRelief : Rule::BelowMargin) << d.reason;
  }
}

TEST(PlannerExpectedUnmet, ChoosesTheDonorWithTheBestNetReliefPerCost) {
  // "tight" adds a little of its own tail per CPU given; "idle" adds nothing.
  PlanInput in = hotAndTight();
  in.islands.push_back(island("idle", cpuRange(16, 8), flatProfile(1, 1.5, 2)));
  in.host.nodes = {{0, cpuRange(0, 24)}};
  Planner planner = makePlanner(expectedUnmet());
  PlanResult result = planner.plan(in);
  ASSERT_EQ(result.decisions.size(), 1u);
  const Decision& d = result.decisions[0];
  ASSERT_TRUE(d.taken) << d.reason;
  EXPECT_EQ(d.fromIsland, "idle");
  EXPECT_GE(d.cpusMoved.size(), 1u);
  EXPECT_LE(d.cpusMoved.size(), 4u);  // the resize sizing: 11 x 1.05 - 8 -> 4 CPUs
}

TEST(PlannerExpectedUnmet, FallbackAppliesOnlyWhereThePeakRuleFindsNoDonor) {
  PlannerConfig config = enforcing();
  config.donorRule = DonorRule::PeakThenExpectedUnmet;

  // No donor by the peak rule: "tight" gives by expected unmet demand.
  Planner fallback = makePlanner(config);
  PlanResult tight = fallback.plan(hotAndTight());
  ASSERT_EQ(tight.decisions.size(), 1u);
  ASSERT_TRUE(tight.decisions[0].taken) << tight.decisions[0].reason;
  EXPECT_EQ(tight.decisions[0].fromIsland, "tight");

  // "idle" has slack by its peak: the peak rule's decision, unchanged.
  PlanInput in = hotAndTight();
  in.islands.push_back(island("idle", cpuRange(16, 8), flatProfile(1, 1.5, 2)));
  in.host.nodes = {{0, cpuRange(0, 24)}};
  PlannerConfig peakConfig = enforcing();
  peakConfig.donorRule = DonorRule::Peak;
  Planner peak = makePlanner(peakConfig);
  Planner withFallback = makePlanner(config);
  const PlanResult byPeak = peak.plan(in);
  const PlanResult byFallback = withFallback.plan(in);
  ASSERT_EQ(byPeak.decisions.size(), 1u);
  ASSERT_EQ(byFallback.decisions.size(), 1u);
  ASSERT_TRUE(byPeak.decisions[0].taken) << byPeak.decisions[0].reason;
  EXPECT_EQ(byFallback.decisions[0].fromIsland, "idle");
  EXPECT_EQ(byFallback.decisions[0].cpusMoved, byPeak.decisions[0].cpusMoved);
  EXPECT_EQ(byFallback.decisions[0].benefit, byPeak.decisions[0].benefit);
}

// "tight" as above over the planning horizon (12 steps), but its demand
// returns in the second hour (steps 12-23, inside the 2 h cooldown a resize
// starts): p50 8, p95 9.5 on 8 CPUs.
PlanInput hotAndTightLater() {
  PlanInput in = hotAndTight();
  forecast::ProfileSnapshot later = flatProfile(5, 7.0, 7.3, 24);
  for (int k = 12; k < 24; ++k) {
    later.p50[k] = 8.0f;
    later.p95[k] = 9.5f;
    later.p99[k] = 10.0f;
  }
  in.islands[1].profile = later;
  return in;
}

TEST(PlannerExpectedUnmet, DonorHarmOverTheCooldownSeesDemandReturningAfterTheHorizon) {
  EXPECT_TRUE(PlannerConfig{}.donorHarmOverCooldown);
  // Over the horizon alone, "tight" gives a CPU as before.
  PlannerConfig horizon = expectedUnmet();
  horizon.donorHarmOverCooldown = false;
  Planner horizonOnly = makePlanner(horizon);
  const Decision gives = horizonOnly.plan(hotAndTightLater()).decisions[0];
  ASSERT_TRUE(gives.taken) << gives.reason;
  EXPECT_EQ(gives.fromIsland, "tight");

  // Over the cooldown (24 steps), a CPU less costs "tight" more in its second
  // hour than it relieves "hot" in its first: nothing is given.
  PlannerConfig config = expectedUnmet();
  config.donorHarmOverCooldown = true;
  const double harm24 =
      12 * 300 *
          (expectedUnmetDemand({8.0, 9.5, 10.0}, 7) - expectedUnmetDemand({8.0, 9.5, 10.0}, 8)) +
      unmetOver12(5, 7.0, 7.3, 7) - unmetOver12(5, 7.0, 7.3, 8);
  const double relief = unmetOver12(9, 10.5, 11, 8) - unmetOver12(9, 10.5, 11, 9);
  ASSERT_GT(harm24, relief);
  Planner overCooldown = makePlanner(config);
  const Decision held = overCooldown.plan(hotAndTightLater()).decisions[0];
  EXPECT_FALSE(held.taken) << held.reason;
  EXPECT_EQ(held.fromIsland, "tight");
  EXPECT_LT(held.benefit, 0);
  EXPECT_EQ(held.rule, Rule::SmallRelief) << held.reason;

  // A profile that ends at the horizon has nothing more to count: the same
  // decision as without the rule.
  Planner shortProfile = makePlanner(config);
  const Decision same = shortProfile.plan(hotAndTight()).decisions[0];
  ASSERT_TRUE(same.taken) << same.reason;
  EXPECT_EQ(same.benefit, gives.benefit);
}

TEST(PlannerExpectedUnmet, DonorRuleNamesRoundTripAndOthersAreRefused) {
  for (auto rule : {DonorRule::Peak, DonorRule::ExpectedUnmet, DonorRule::PeakThenExpectedUnmet})
    EXPECT_EQ(parseDonorRule(donorRuleName(rule)), rule);
  EXPECT_EQ(donorRuleName(DonorRule::ExpectedUnmet), "expected-unmet");
  EXPECT_FALSE(parseDonorRule("expected_unmet"));
  EXPECT_FALSE(parseDonorRule(""));
  EXPECT_EQ(PlannerConfig{}.donorRule, DonorRule::PeakThenExpectedUnmet);
  PlannerConfig bad;
  bad.donorRule = static_cast<DonorRule>(7);
  EXPECT_NE(bad.validate().find("planner.donor_rule = 7"), std::string::npos) << bad.validate();
}

}  // namespace
}  // namespace Atoll::planner
