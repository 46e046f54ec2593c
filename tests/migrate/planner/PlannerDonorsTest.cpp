// How donors are chosen and sized: over the period a resize commits them to
// (the island cooldown it starts), and what one donor gives when none alone
// can give what the receiver needs. Constructed forecasts, no root.
#include <gtest/gtest.h>

#include "migrate/planner/Planner.h"
#include "tests/migrate/planner/PlannerFixtures.h"

namespace Atoll::planner {
namespace {

using namespace testing;

constexpr int kCooldownSteps = 24;  // the default 2 h island cooldown in 5-minute steps

// A profile idle over the first `quietSteps` and busy from then on.
forecast::ProfileSnapshot risingProfile(int quietSteps, int steps) {
  forecast::ProfileSnapshot s = flatProfile(2, 2.5, 3, steps);
  for (int k = quietSteps; k < steps; ++k) {
    s.p50[k] = 6;
    s.p95[k] = 7;
    s.p99[k] = 7.5;
  }
  return s;
}

// "hot" needs 6 CPUs (its p99 peak 13 x 1.05 - 8); "later" and "steady"
// can spare 5 over the 1 h horizon, but "later" needs its CPUs again within
// the 2 h cooldown a resize starts.
PlanInput hotWithTwoDonors() {
  PlanInput in;
  in.nowNs = 1000 * kStepNs;
  in.islands.push_back(island("hot", cpuRange(0, 8), flatProfile(10, 12, 13, kCooldownSteps)));
  in.islands.push_back(island("later", cpuRange(8, 8), risingProfile(12, kCooldownSteps)));
  in.islands.push_back(island("steady", cpuRange(16, 8), flatProfile(2, 2.5, 3, kCooldownSteps)));
  in.host.nodes = {{0, cpuRange(0, 24)}};
  return in;
}

const Decision* firstTaken(const PlanResult& result) {
  for (const auto& d : result.decisions)
    if (d.taken) return &d;
  return nullptr;
}

TEST(PlannerDonors, HorizonOnlyDonorGivesCpusItNeedsBeforeItsCooldownEnds) {
  Planner planner = makePlanner(enforcing());
  PlanResult result = planner.plan(hotWithTwoDonors());
  const Decision* taken = firstTaken(result);
  ASSERT_NE(taken, nullptr);
  // Without the rule both donors look alike over the horizon; the first wins.
  EXPECT_EQ(taken->fromIsland, "later");
}

TEST(PlannerDonors, DonorKeepsItsPeakOverTheCooldownItStarts) {
  PlannerConfig config = enforcing();
  config.donorRule = DonorRule::Peak;  // the peak rule's donors alone
  config.donorKeepsPeakOverCooldown = true;
  Planner planner = makePlanner(config);
  PlanResult result = planner.plan(hotWithTwoDonors());
  const Decision* taken = firstTaken(result);
  ASSERT_NE(taken, nullptr) << result.decisions[0].reason;
  EXPECT_EQ(taken->fromIsland, "steady");
  EXPECT_EQ(taken->cpusMoved.size(), 5u);  // all it can spare of the 6 wanted

  // With "later" the only donor, it has nothing to spare over its cooldown.
  PlanInput alone = hotWithTwoDonors();
  alone.islands.pop_back();
  Planner fresh = makePlanner(config);
  PlanResult none = fresh.plan(alone);
  ASSERT_EQ(none.decisions.size(), 1u);
  EXPECT_EQ(none.decisions[0].rule, Rule::NoDonor) << none.decisions[0].reason;

  // A cooldown no longer than the horizon changes nothing.
  config.islandCooldownNs = 12 * kStepNs;
  Planner shortCooldown = makePlanner(config);
  const PlanResult withShortCooldown = shortCooldown.plan(hotWithTwoDonors());
  const Decision* fromLater = firstTaken(withShortCooldown);
  ASSERT_NE(fromLater, nullptr);
  EXPECT_EQ(fromLater->fromIsland, "later");
}

// "hot" needs 6 CPUs (13 x 1.05 - 8); "a" and "b" can spare 2 each, "c" one.
PlanInput hotWithSmallDonors() {
  PlanInput in;
  in.nowNs = 1000 * kStepNs;
  in.islands.push_back(island("hot", cpuRange(0, 8), flatProfile(10, 12, 13)));
  in.islands.push_back(island("a", cpuRange(8, 8), flatProfile(4, 5, 5.2)));
  in.islands.push_back(island("b", cpuRange(16, 8), flatProfile(4, 5, 5.2)));
  in.islands.push_back(island("c", cpuRange(24, 8), flatProfile(5.5, 6.5, 6.6)));
  in.host.nodes = {{0, cpuRange(0, 32)}};
  return in;
}

// No single donor can give what "hot" needs: the best one gives what it can
// spare, and the island stays at risk rather than emptying several donors.
TEST(PlannerDonors, OneSmallDonorGivesWhatItCanAndTheIslandStaysAtRisk) {
  Planner planner = makePlanner(enforcing());
  PlanResult result = planner.plan(hotWithSmallDonors());
  int taken = 0;
  for (const auto& d : result.decisions) taken += d.taken ? 1 : 0;
  ASSERT_EQ(taken, 1);
  const Decision* d = firstTaken(result);
  EXPECT_EQ(d->cpusMoved.size(), 2u);
  EXPECT_GE(d->islands.front().contentionAfter, 0.05);
}

}  // namespace
}  // namespace Atoll::planner
