// Anti-thrash guards: in flight, budgets, dwell and hysteresis.
#include <gtest/gtest.h>

#include "migrate/planner/Planner.h"
#include "tests/migrate/planner/PlannerFixtures.h"

namespace Atoll::planner {
namespace {

using namespace testing;

// Two independent hot/cool pairs.
PlanInput twoPairs(int64_t nowNs) {
  PlanInput in = hotAndCool(nowNs);
  in.islands.push_back(island("hot2", cpuRange(16, 8), flatProfile(10, 12, 13)));
  in.islands.push_back(island("cool2", cpuRange(24, 8), flatProfile(2, 2.5, 3)));
  return in;
}

TEST(Guards, NeverTwoConflictingActionsInFlight) {
  PlannerConfig config = enforcing();
  config.islandCooldownNs = 0;  // the in-flight check alone
  Planner planner = makePlanner(config);
  const int64_t now = 1000 * kStepNs;
  const uint64_t first = planner.plan(hotAndCool(now)).decisions[0].id;
  PlanResult again = planner.plan(hotAndCool(now + kStepNs));
  ASSERT_EQ(again.decisions.size(), 1u);
  EXPECT_FALSE(again.decisions[0].taken);
  EXPECT_EQ(again.decisions[0].rule, Rule::InFlight);
  EXPECT_NE(again.decisions[0].reason.find(std::to_string(first)), std::string::npos);
  planner.reportCompleted(first, now + kStepNs);
  EXPECT_TRUE(planner.plan(hotAndCool(now + 2 * kStepNs)).decisions[0].taken);
}

TEST(Guards, AFailedActionNoLongerBlocks) {
  Planner planner = makePlanner(enforcing());
  const int64_t now = 1000 * kStepNs;
  const uint64_t first = planner.plan(hotAndCool(now)).decisions[0].id;
  planner.reportFailed(first, now + kSecondNs);
  EXPECT_TRUE(planner.inFlight().empty());
  EXPECT_TRUE(planner.plan(hotAndCool(now + kStepNs)).decisions[0].taken);
}

// A planner started again reads the actions journaled by the one before it
// (as toJson wrote them): their cooldowns and budgets hold, a failed one
// spends budget but blocks nothing, and ids go on after theirs.
TEST(Guards, ActionsRestoredAfterARestartHoldTheirGuards) {
  const int64_t now = 1000 * kStepNs;
  Planner before = makePlanner(enforcing());
  const Decision taken = before.plan(hotAndCool(now)).decisions[0];
  ASSERT_TRUE(taken.execute);
  auto restored = executedActionFromJson(toJson(taken));
  ASSERT_TRUE(restored) << restored.error().message();
  EXPECT_EQ(restored->id, taken.id);
  EXPECT_EQ(restored->action, taken.action);
  EXPECT_EQ(restored->fromIsland, taken.fromIsland);
  EXPECT_EQ(restored->toIsland, taken.toIsland);
  EXPECT_EQ(restored->cpusMoved, taken.cpusMoved);
  // What its outcome is measured by comes back too.
  EXPECT_EQ(restored->horizonSeconds, taken.horizonSeconds);
  ASSERT_EQ(restored->islands.size(), taken.islands.size());
  for (size_t i = 0; i < taken.islands.size(); ++i) {
    EXPECT_EQ(restored->islands[i].island, taken.islands[i].island);
    EXPECT_EQ(restored->islands[i].capacityBefore, taken.islands[i].capacityBefore);
    EXPECT_EQ(restored->islands[i].capacityAfter, taken.islands[i].capacityAfter);
    EXPECT_EQ(restored->islands[i].overloadBefore, taken.islands[i].overloadBefore);
    EXPECT_EQ(restored->islands[i].overloadAfter, taken.islands[i].overloadAfter);
  }

  Planner after = makePlanner(enforcing());
  after.restoreExecuted(*restored, false);
  EXPECT_TRUE(after.inFlight().empty());
  const Decision held = after.plan(hotAndCool(now + kStepNs)).decisions[0];
  EXPECT_FALSE(held.taken);
  EXPECT_EQ(held.rule, Rule::Cooldown) << held.reason;
  EXPECT_GT(held.id, taken.id);

  Planner afterFailure = makePlanner(enforcing());
  afterFailure.restoreExecuted(*restored, true);
  EXPECT_TRUE(afterFailure.plan(hotAndCool(now + kStepNs)).decisions[0].taken);

  // Records that are no executed action are refused, naming the field.
  nlohmann::json none = toJson(taken);
  none["action"] = "none";
  EXPECT_FALSE(executedActionFromJson(none));
  nlohmann::json noTime = toJson(taken);
  noTime.erase("at_ns");
  auto refused = executedActionFromJson(noTime);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("at_ns"), std::string::npos)
      << refused.error().message();
  nlohmann::json badView = toJson(taken);
  badView["islands"][0]["overload_before_core_s"] = "lots";
  auto refusedView = executedActionFromJson(badView);
  ASSERT_FALSE(refusedView);
  EXPECT_NE(refusedView.error().message().find("overload_before_core_s"), std::string::npos)
      << refusedView.error().message();
  // An outcome is expected again only for an action the planner knows and
  // that did not fail.
  EXPECT_TRUE(after.reopenOutcome(taken.id));
  EXPECT_FALSE(after.reopenOutcome(taken.id + 100));
  EXPECT_FALSE(afterFailure.reopenOutcome(taken.id));
}

TEST(Guards, IslandBudgetPerWindow) {
  PlannerConfig config = enforcing();
  config.islandMovesPerWindow = 1;
  config.islandCooldownNs = 0;  // the budget alone
  Planner planner = makePlanner(config);
  const int64_t now = 1000 * kStepNs;
  const uint64_t first = planner.plan(hotAndCool(now)).decisions[0].id;
  planner.reportCompleted(first, now);
  PlanResult blocked = planner.plan(hotAndCool(now + kStepNs));
  EXPECT_EQ(blocked.decisions[0].rule, Rule::IslandBudget);
  EXPECT_FALSE(blocked.decisions[0].taken);
  // After the window, the budget is back.
  PlanResult later = planner.plan(hotAndCool(now + config.budgetWindowNs + kStepNs));
  EXPECT_TRUE(later.decisions[0].taken);
}

TEST(Guards, HostBudgetPerWindow) {
  PlannerConfig config = enforcing();
  config.hostMovesPerWindow = 1;
  Planner planner = makePlanner(config);
  PlanResult result = planner.plan(twoPairs(1000 * kStepNs));
  ASSERT_EQ(result.decisions.size(), 2u);
  EXPECT_TRUE(result.decisions[0].taken);
  EXPECT_FALSE(result.decisions[1].taken);
  EXPECT_EQ(result.decisions[1].rule, Rule::HostBudget);
  // With budget for both, both pairs act in one pass.
  config.hostMovesPerWindow = 8;
  Planner roomy = makePlanner(config);
  EXPECT_EQ(roomy.plan(twoPairs(1000 * kStepNs)).toExecute().size(), 2u);
}

TEST(Guards, MinimumDwellAfterAVmMove) {
  PlannerConfig config = enforcing();
  config.cacheWarmupSecondsPerCpu = 1e6;  // only VM moves can pay
  Planner planner = makePlanner(config);
  PlanInput in = hotAndCool();
  VmState vm;
  vm.workload = 7, vm.name = "web", vm.island = "hot";
  vm.demand = flatProfile(4, 5, 5.5);
  vm.lastMoveNs = in.nowNs - config.minDwellNs / 2;
  in.vms = {vm};
  PlanResult early = planner.plan(in);
  ASSERT_FALSE(early.decisions.empty());
  EXPECT_FALSE(early.decisions[0].taken);
  bool sawDwell = false;
  for (const auto& d : planner.history()) sawDwell |= d.rule == Rule::Dwell;
  EXPECT_TRUE(sawDwell);
  in.vms[0].lastMoveNs = in.nowNs - config.minDwellNs - kSecondNs;
  PlanResult later = planner.plan(in);
  ASSERT_FALSE(later.decisions.empty());
  EXPECT_TRUE(later.decisions[0].taken);
  EXPECT_EQ(later.decisions[0].action, ActionKind::MoveVm);
}

// hot takes CPUs from cool; then the load flips. Reversing needs the
// hysteresis factor's larger gain.
TEST(Guards, HysteresisStopsAFlipFlop) {
  auto flipped = [](int64_t now) {
    PlanInput in;
    in.nowNs = now;
    in.islands.push_back(island("hot", cpuRange(0, 13), flatProfile(3, 3.5, 4)));
    in.islands.push_back(island("cool", cpuRange(13, 3), flatProfile(3, 3.3, 3.5)));
    in.host.nodes = {{0, cpuRange(0, 16)}};
    return in;
  };
  const int64_t now = 1000 * kStepNs;
  for (double factor : {1.0, 1e6}) {
    PlannerConfig config = enforcing();
    config.hysteresisFactor = factor;
    config.islandCooldownNs = 0;  // hysteresis alone
    Planner planner = makePlanner(config);
    const Decision first = planner.plan(hotAndCool(now)).decisions[0];
    ASSERT_TRUE(first.taken);
    planner.reportCompleted(first.id, now + kSecondNs);
    PlanResult back = planner.plan(flipped(now + kStepNs));
    ASSERT_EQ(back.decisions.size(), 1u);
    const Decision& d = back.decisions[0];
    EXPECT_EQ(d.fromIsland, "hot");
    EXPECT_EQ(d.toIsland, "cool");
    EXPECT_EQ(d.reverses, first.id);
    if (factor == 1.0) {
      EXPECT_TRUE(d.taken);
    } else {
      EXPECT_FALSE(d.taken);
      EXPECT_EQ(d.rule, Rule::Hysteresis);
      EXPECT_GT(d.margin, config.margin);
    }
  }
  // Past the hysteresis window the reversal is an ordinary decision.
  PlannerConfig config = enforcing();
  config.hysteresisFactor = 1e6;
  config.islandCooldownNs = 0;
  Planner planner = makePlanner(config);
  const Decision first = planner.plan(hotAndCool(now)).decisions[0];
  planner.reportCompleted(first.id, now);
  const Decision late =
      planner.plan(flipped(now + config.hysteresisWindowNs + kStepNs)).decisions[0];
  EXPECT_TRUE(late.taken);
  EXPECT_FALSE(late.reverses);
}

// After an action, the islands it touched are left alone for the cooldown,
// even with budget to spare; a revert is not held back by it.
TEST(Guards, CooldownLeavesAChangedIslandAlone) {
  PlannerConfig config = enforcing();
  config.islandCooldownNs = 2 * 3'600 * kSecondNs;
  config.sameRoleCooldownNs = config.islandCooldownNs;  // the whole cooldown for every action
  config.islandMovesPerWindow = 1000;
  config.hostMovesPerWindow = 1000;
  config.hysteresisWindowNs = 0;
  Planner planner = makePlanner(config);
  const int64_t now = 1000 * kStepNs;
  const Decision first = planner.plan(hotAndCool(now)).decisions[0];
  ASSERT_TRUE(first.taken) << first.reason;
  planner.reportCompleted(first.id, now + kSecondNs);
  const Decision held = planner.plan(hotAndCool(now + kStepNs)).decisions[0];
  EXPECT_FALSE(held.taken);
  EXPECT_EQ(held.rule, Rule::Cooldown);
  EXPECT_NE(held.reason.find("cooldown"), std::string::npos) << held.reason;
  EXPECT_EQ(toJson(held)["rule"], "cooldown");
  // Just before the cooldown ends it still holds; after it, the island acts.
  EXPECT_FALSE(
      planner.plan(hotAndCool(now + config.islandCooldownNs - kSecondNs)).decisions[0].taken);
  EXPECT_TRUE(
      planner.plan(hotAndCool(now + config.islandCooldownNs + kSecondNs)).decisions[0].taken);

  // Post-move verification may still undo a change inside the cooldown.
  Planner verifying = makePlanner(config);
  PlanInput in = hotAndCool(now);
  const Decision resize = verifying.plan(in).decisions[0];
  ASSERT_TRUE(resize.taken);
  verifying.reportCompleted(resize.id, now + kSecondNs);
  MoveVerification worse{resize.id, now + kStepNs, 1000, 5000, 1, 1};
  auto revert = verifying.verify(worse, in);
  ASSERT_TRUE(revert.has_value());
  EXPECT_EQ(revert->rule, Rule::Revert);
}

// Within the cooldown, an island relieved by the last action may be relieved
// again once the shorter same-role cooldown has passed; taking back what was
// just given still waits the whole cooldown.
TEST(Guards, SameRoleActsAgainSoonerThanAReversal) {
  PlannerConfig config = enforcing();
  config.islandCooldownNs = 2 * 3'600 * kSecondNs;
  config.sameRoleCooldownNs = 1'800 * kSecondNs;
  config.islandMovesPerWindow = 1000;
  config.hostMovesPerWindow = 1000;
  config.hysteresisWindowNs = 0;
  config.balanceBand = 0;  // the at-risk rule alone
  const int64_t now = 1000 * kStepNs;
  // The reverse case: "hot" now idle on 12 CPUs, "cool" heading past its 4.
  auto swapped = [](int64_t at) {
    PlanInput in;
    in.nowNs = at;
    in.islands.push_back(island("hot", cpuRange(0, 12), flatProfile(2, 2.5, 3)));
    in.islands.push_back(island("cool", cpuRange(12, 4), flatProfile(5, 6, 7)));
    in.host.nodes = {{0, cpuRange(0, 16)}};
    return in;
  };
  Planner planner = makePlanner(config);
  const Decision first = planner.plan(hotAndCool(now)).decisions[0];
  ASSERT_TRUE(first.taken) << first.reason;
  ASSERT_EQ(first.toIsland, "hot");
  planner.reportCompleted(first.id, now + kSecondNs);
  // Relieving "hot" again: held inside the same-role cooldown, free after it.
  const Decision early = planner.plan(hotAndCool(now + kStepNs)).decisions[0];
  EXPECT_FALSE(early.taken);
  EXPECT_EQ(early.rule, Rule::Cooldown);
  const Decision reversed =
      planner.plan(swapped(now + config.sameRoleCooldownNs + kSecondNs)).decisions[0];
  EXPECT_EQ(reversed.fromIsland, "hot");
  EXPECT_EQ(reversed.toIsland, "cool");
  EXPECT_FALSE(reversed.taken);
  EXPECT_EQ(reversed.rule, Rule::Cooldown) << reversed.reason;
  EXPECT_NE(reversed.reason.find("cooldown"), std::string::npos) << reversed.reason;
  const Decision again =
      planner.plan(hotAndCool(now + config.sameRoleCooldownNs + kSecondNs)).decisions[0];
  EXPECT_TRUE(again.taken) << again.reason;
  EXPECT_EQ(again.toIsland, "hot");
}

}  // namespace
}  // namespace Atoll::planner
