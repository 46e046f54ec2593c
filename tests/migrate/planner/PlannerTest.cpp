// Cost/benefit rules, modes, priorities, topology rules, the outcome loop and
// post-move verification, on constructed forecasts.
#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "migrate/planner/Planner.h"
#include "migrate/planner/SimulatedHost.h"
#include "numa/CpuSet.h"
#include "tests/migrate/planner/PlannerFixtures.h"

namespace Atoll::planner {
namespace {

using namespace testing;

const Decision* firstTaken(const PlanResult& result) {
  for (const auto& d : result.decisions)
    if (d.taken) return &d;
  return nullptr;
}

TEST(Planner, ResizesAnIslandHeadingForContentionFromOneWithSlack) {
  Planner planner = makePlanner(enforcing());
  PlanResult result = planner.plan(hotAndCool());
  ASSERT_EQ(result.decisions.size(), 1u);
  const Decision& d = result.decisions[0];
  EXPECT_EQ(d.action, ActionKind::ResizeIsland);
  EXPECT_EQ(d.fromIsland, "cool");
  EXPECT_EQ(d.toIsland, "hot");
  EXPECT_TRUE(d.taken);
  EXPECT_TRUE(d.execute);
  EXPECT_EQ(d.rule, Rule::BenefitExceedsCost);
  // Enough to cover the p95 peak with headroom (12 x 1.05 - 8 -> 5 CPUs), and
  // only CPUs the donor had.
  EXPECT_EQ(d.cpusMoved.size(), 5u);
  for (unsigned cpu : d.cpusMoved) EXPECT_GE(cpu, 8u);
  EXPECT_GT(d.benefit, d.cost.total() * (1 + d.margin));
  ASSERT_EQ(d.islands.size(), 2u);
  EXPECT_EQ(d.islands[0].island, "hot");
  EXPECT_DOUBLE_EQ(d.islands[0].capacityBefore, 8);
  EXPECT_DOUBLE_EQ(d.islands[0].capacityAfter, 13);
  EXPECT_GT(d.islands[0].contentionBefore, 0.5);
  EXPECT_LT(d.islands[0].contentionAfter, 0.05);
  EXPECT_FLOAT_EQ(d.islands[0].p95Peak, 12);
  EXPECT_EQ(result.toExecute(), std::vector<uint64_t>{d.id});
  EXPECT_EQ(planner.inFlight(), std::vector<uint64_t>{d.id});
}

TEST(Planner, ExplainsEveryDecisionInJson) {
  Planner planner = makePlanner(enforcing());
  PlanResult result = planner.plan(hotAndCool());
  auto json = toJson(result);
  const auto& d = json["decisions"][0];
  EXPECT_EQ(d["action"], "resize-island");
  EXPECT_EQ(d["rule"], "benefit-exceeds-cost");
  EXPECT_TRUE(d["taken"].get<bool>());
  EXPECT_TRUE(d.contains("benefit_core_s"));
  EXPECT_TRUE(d["cost_core_s"].contains("cache_warmup"));
  EXPECT_EQ(d["islands"][0]["island"], "hot");
  EXPECT_TRUE(d["islands"][0].contains("p50_peak"));
  EXPECT_TRUE(d["islands"][0].contains("contention_before"));
  EXPECT_EQ(d["cpus_moved"].size(), 5u);
}

TEST(Planner, NothingToDoWithoutRisk) {
  Planner planner = makePlanner(enforcing());
  PlanInput in = hotAndCool();
  in.islands[0].profile = flatProfile(3, 4, 5);
  EXPECT_TRUE(planner.plan(in).decisions.empty());
}

// With a p50 floor, an island whose forecast crosses the risk threshold
// only through its upper tail (a spiky island on a lightly loaded host) is
// not at risk; one whose central forecast is near its capacity still is.
TEST(Planner, AP50FloorIgnoresRiskFromTheTailAlone) {
  PlanInput in = hotAndCool();
  in.islands[0].profile = flatProfile(2, 9, 14);  // P(demand > 8 CPUs) > 5% from the tail
  PlannerConfig noFloor = enforcing();
  noFloor.minRiskP50Share = 0;
  Planner lenient = makePlanner(noFloor);
  const PlanResult tailRisk = lenient.plan(in);
  ASSERT_FALSE(tailRisk.decisions.empty());
  EXPECT_TRUE(tailRisk.decisions[0].taken) << tailRisk.decisions[0].reason;

  PlannerConfig config = enforcing();
  config.minRiskP50Share = 0.6;
  Planner floored = makePlanner(config);
  EXPECT_TRUE(floored.plan(in).decisions.empty());
  // The hot island's p50 (10 cores on 8 CPUs) is past the floor: still served.
  Planner hot = makePlanner(config);
  const PlanResult hotResult = hot.plan(hotAndCool());
  const Decision* d = firstTaken(hotResult);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->toIsland, "hot");

  config.minRiskP50Share = 1.5;
  EXPECT_FALSE(Planner::create(config));
}

TEST(Planner, DeclinesBelowTheMargin) {
  PlannerConfig config = enforcing();
  config.cacheWarmupSecondsPerCpu = 1e6;  // moves far dearer than any contention
  Planner planner = makePlanner(config);
  PlanResult result = planner.plan(hotAndCool());
  ASSERT_EQ(result.decisions.size(), 1u);
  EXPECT_FALSE(result.decisions[0].taken);
  EXPECT_FALSE(result.decisions[0].execute);
  EXPECT_EQ(result.decisions[0].rule, Rule::BelowMargin);
  EXPECT_TRUE(planner.inFlight().empty());
}

TEST(Planner, NoDonorWhenEveryIslandIsBusy) {
  PlannerConfig config = enforcing();
  config.donorRule = DonorRule::Peak;  // no island has a CPU beyond its peak
  Planner planner = makePlanner(config);
  PlanInput in = hotAndCool();
  in.islands[1].profile = flatProfile(7.5, 8, 8.5);
  PlanResult result = planner.plan(in);
  ASSERT_GE(result.decisions.size(), 1u);
  EXPECT_EQ(result.decisions[0].action, ActionKind::None);
  EXPECT_EQ(result.decisions[0].rule, Rule::NoDonor);
  EXPECT_FALSE(result.decisions[0].taken);
}

TEST(Planner, DonorKeepsItsOwnHeadroom) {
  PlannerConfig config = enforcing();
  config.minReliefShare = 0;  // one CPU relieves little: here only the donor's limit counts
  Planner planner = makePlanner(config);
  PlanInput in = hotAndCool();
  in.islands[1].profile = flatProfile(5, 6, 6.5);  // 8 - 6 x 1.05 = 1.7: one CPU to spare
  PlanResult result = planner.plan(in);
  const Decision* d = firstTaken(result);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->cpusMoved.size(), 1u);
}

TEST(Planner, ObserveModeExplainsButExecutesNothing) {
  Planner planner = makePlanner(PlannerConfig{});  // observe by default
  PlanResult first = planner.plan(hotAndCool());
  ASSERT_EQ(first.decisions.size(), 1u);
  EXPECT_TRUE(first.decisions[0].taken);
  EXPECT_FALSE(first.decisions[0].execute);
  EXPECT_TRUE(first.toExecute().empty());
  EXPECT_TRUE(planner.inFlight().empty());
  // Nothing in flight and no budget spent: the next pass decides the same.
  PlanResult second = planner.plan(hotAndCool(1001 * kStepNs));
  ASSERT_EQ(second.decisions.size(), 1u);
  EXPECT_TRUE(second.decisions[0].taken);
}

TEST(Planner, PerIslandModeOverride) {
  PlanInput in = hotAndCool();
  {
    Planner planner = makePlanner(PlannerConfig{});
    in.islands[0].modeOverride = Mode::Enforce;
    in.islands[1].modeOverride = Mode::Enforce;
    EXPECT_TRUE(planner.plan(in).decisions[0].execute);
  }
  {
    Planner planner = makePlanner(enforcing());
    in.islands[0].modeOverride = std::nullopt;
    in.islands[1].modeOverride = Mode::Observe;  // an action touching it is not executed
    auto result = planner.plan(in);
    EXPECT_TRUE(result.decisions[0].taken);
    EXPECT_FALSE(result.decisions[0].execute);
  }
}

TEST(Planner, HigherPriorityIslandIsServedFirst) {
  Planner planner = makePlanner(enforcing());
  PlanInput in;
  in.nowNs = 1000 * kStepNs;
  in.islands.push_back(island("batch", cpuRange(0, 8), flatProfile(10, 12, 13)));
  in.islands.push_back(island("gold", cpuRange(8, 8), flatProfile(9, 10, 11)));
  in.islands.push_back(island("idle", cpuRange(16, 8), flatProfile(1, 1.5, 2)));
  in.islands[1].priority = 2;
  PlanResult result = planner.plan(in);
  const Decision* d = firstTaken(result);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->toIsland, "gold");
  EXPECT_EQ(d->fromIsland, "idle");
  // The donor is busy for the rest of the pass: batch is told why it got nothing.
  ASSERT_EQ(result.decisions.size(), 2u);
  EXPECT_EQ(result.decisions[1].toIsland, "batch");
  EXPECT_FALSE(result.decisions[1].taken);
}

TEST(Planner, SameInputSameDecisions) {
  Planner a = makePlanner(enforcing());
  Planner b = makePlanner(enforcing());
  EXPECT_EQ(toJson(a.plan(hotAndCool())).dump(), toJson(b.plan(hotAndCool())).dump());
}

TEST(Planner, MovesAFlexibleVmWhenThatPaysBetter) {
  PlannerConfig config = enforcing();
  config.cacheWarmupSecondsPerCpu = 1e6;  // resizes priced out
  Planner planner = makePlanner(config);
  PlanInput in = hotAndCool();
  in.islands[1].memNodes = {1};
  VmState pinned, big, small;
  pinned.workload = 1, pinned.name = "pinned", pinned.island = "hot";
  pinned.flexibility = Flexibility::Pinned;
  pinned.demand = flatProfile(6, 7, 7.5);
  big.workload = 2, big.name = "big", big.island = "hot";
  big.demand = flatProfile(3, 3.5, 4);
  big.residentBytes = 2ULL << 30;
  small.workload = 3, small.name = "small", small.island = "hot";
  small.demand = flatProfile(1, 1.5, 2);
  in.vms = {pinned, big, small};
  PlanResult result = planner.plan(in);
  const Decision* d = firstTaken(result);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->action, ActionKind::MoveVm);
  EXPECT_EQ(d->vmName, "big");
  EXPECT_EQ(d->toIsland, "cool");
  EXPECT_EQ(d->targetMemNodes, numa::CpuList{1});
  // Memory moves between nodes: 2 GiB at the default 1 GB/s.
  EXPECT_NEAR(d->cost.pageMigration, double(2ULL << 30) / 1e9, 1e-9);
  in.host.migrationBytesPerSecond = 4e9;
  Planner faster = makePlanner(config);
  PlanResult quickResult = faster.plan(in);  // the decision points into it
  const Decision* quick = firstTaken(quickResult);
  ASSERT_NE(quick, nullptr);
  EXPECT_NEAR(quick->cost.pageMigration, double(2ULL << 30) / 4e9, 1e-9);
}

// A move would net a little more here (its cache warm-up is cheaper than the
// resize's), but a resize that takes the island out of risk is preferred:
// it is cheaper to undo and moves nobody's memory.
TEST(Planner, PrefersAResizeThatRelievesTheIslandOverAMove) {
  PlannerConfig config = enforcing();
  config.cacheWarmupSecondsPerCpu = 5;
  PlanInput in;
  in.nowNs = 1000 * kStepNs;
  in.islands.push_back(island("hot", cpuRange(0, 8), flatProfile(10, 12, 13)));
  in.islands.push_back(island("cool", cpuRange(8, 16), flatProfile(2, 2.5, 3)));
  in.host.nodes = {{0, cpuRange(0, 24)}};
  VmState big;
  big.workload = 1, big.name = "big", big.island = "hot";
  big.demand = flatProfile(5, 5.5, 6);
  in.vms = {big};
  Planner planner = makePlanner(config);
  PlanResult result = planner.plan(in);
  const Decision* d = firstTaken(result);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->action, ActionKind::ResizeIsland) << d->reason;
  ASSERT_FALSE(d->islands.empty());
  EXPECT_LT(d->islands.front().contentionAfter, config.riskThreshold);
  // The move was there to take: with resizes priced out, it is taken.
  config.cacheWarmupSecondsPerCpu = 1e6;
  Planner noResizes = makePlanner(config);
  PlanResult moved = noResizes.plan(in);
  const Decision* m = firstTaken(moved);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->action, ActionKind::MoveVm);
  EXPECT_EQ(m->vmName, "big");
}

// One action should last the horizon: the receiver is sized for its p99
// peak (x headroom), not its p95, when the donor has the slack.
TEST(Planner, ResizeSizesTheReceiverForTheConfiguredQuantilePeak) {
  PlanInput in = hotAndCool();
  in.islands[1].cpus = cpuRange(8, 16);  // slack for either size
  in.host.nodes = {{0, cpuRange(0, 24)}};
  for (auto [quantile, cpus] : {std::pair{95, 5u}, std::pair{99, 6u}}) {
    PlannerConfig config = enforcing();
    config.resizeQuantile = quantile;  // hot: p95 12, p99 13 on 8 CPUs, headroom 1.05
    Planner planner = makePlanner(config);
    PlanResult result = planner.plan(in);
    const Decision* d = firstTaken(result);
    ASSERT_NE(d, nullptr) << quantile;
    EXPECT_EQ(d->action, ActionKind::ResizeIsland);
    EXPECT_EQ(d->cpusMoved.size(), cpus) << "p" << quantile;
  }
  PlannerConfig bad = enforcing();
  bad.resizeQuantile = 90;
  EXPECT_NE(bad.validate().find("resize_quantile = 90"), std::string::npos) << bad.validate();
}

// Action economy: a move that brings far less than the resize the island
// needs would (no donor can spare a CPU, so that resize is the measure) is
// declined, and says so; without the rule it is taken.
TEST(Planner, DeclinesAnActionThatRelievesTooLittle) {
  PlanInput in = hotAndCool();
  in.islands[1].profile = flatProfile(7, 7.4, 7.5);  // no CPU to spare: only a move is left
  VmState small;
  small.workload = 1, small.name = "small", small.island = "hot";
  small.demand = flatProfile(0.3, 0.35, 0.4);
  in.vms = {small};
  PlannerConfig config = enforcing();
  config.donorRule = DonorRule::Peak;  // no resize candidate: the move alone
  Planner planner = makePlanner(config);
  PlanResult result = planner.plan(in);
  ASSERT_EQ(result.decisions.size(), 1u);
  const Decision& d = result.decisions[0];
  EXPECT_FALSE(d.taken);
  EXPECT_EQ(d.rule, Rule::SmallRelief) << d.reason;
  EXPECT_EQ(d.action, ActionKind::MoveVm);
  ASSERT_FALSE(d.islands.empty());
  const IslandView& hot = d.islands.front();
  EXPECT_LT(hot.overloadBefore - hot.overloadAfter, 0.5 * hot.overloadBefore);
  EXPECT_GT(d.benefit, d.cost.total() * (1 + d.margin));  // it would have paid
  EXPECT_NE(d.reason.find("must bring 50% of that"), std::string::npos) << d.reason;
  EXPECT_EQ(toJson(d)["rule"], "small-relief");

  PlannerConfig anyRelief = config;
  anyRelief.minReliefShare = 0;
  Planner lenient = makePlanner(anyRelief);
  PlanResult taken = lenient.plan(in);
  ASSERT_NE(firstTaken(taken), nullptr) << taken.decisions[0].reason;
  EXPECT_EQ(firstTaken(taken)->vm, 1u);
}

// The share is of what the resize the island needs would relieve, not of its
// whole predicted overload: where the forecast's tail is wide, the resize
// sized for the p99 peak leaves some of the tail's expected overload, and an
// action bringing most of that resize's relief is still taken.
TEST(Planner, ReliefShareIsOfWhatTheNeededResizeWouldRelieve) {
  PlanInput in;
  in.nowNs = 1000 * kStepNs;
  in.islands.push_back(island("hot", cpuRange(0, 4), flatProfile(5, 12, 20)));
  in.islands.push_back(island("cool", cpuRange(4, 12), flatProfile(1, 1.5, 2)));
  in.host.nodes = {{0, cpuRange(0, 16)}};
  PlannerConfig config = enforcing();
  config.maxCpusPerResize = 2;  // the most the island may get at once
  Planner planner = makePlanner(config);
  PlanResult result = planner.plan(in);
  const Decision* taken = firstTaken(result);
  ASSERT_NE(taken, nullptr) << (result.decisions.empty() ? "" : result.decisions[0].reason);
  EXPECT_EQ(taken->cpusMoved.size(), 2u);
  const IslandView& hot = taken->islands.front();
  // Two CPUs leave most of the wide tail's overload in place...
  EXPECT_LT(hot.overloadBefore - hot.overloadAfter, 0.5 * hot.overloadBefore);
}

// A donor keeps at least one CPU however idle it is: an idle two-CPU island
// gives one, instead of nothing because it cannot give both.
TEST(Planner, AnIdleDonorKeepsOneCpuAndGivesTheRest) {
  PlanInput in;
  in.nowNs = 1000 * kStepNs;
  in.islands.push_back(island("hot", cpuRange(0, 8), flatProfile(8.3, 8.7, 8.9)));
  in.islands.push_back(island("idle", cpuRange(8, 2), flatProfile(0.01, 0.02, 0.03)));
  in.host.nodes = {{0, cpuRange(0, 16)}};
  Planner planner = makePlanner(enforcing());
  PlanResult result = planner.plan(in);
  const Decision* taken = firstTaken(result);
  ASSERT_NE(taken, nullptr) << (result.decisions.empty() ? "" : result.decisions[0].reason);
  EXPECT_EQ(taken->fromIsland, "idle");
  EXPECT_EQ(taken->cpusMoved.size(), 1u);
}

// A VM's move rests on its own forecast: its benefit is scaled by the
// forecast's recent p95 coverage at the horizon, and a stale forecast (one
// whose level shifted: coverage far below 95%) moves nothing.
TEST(Planner, StaleVmForecastMovesNothing) {
  auto withCoverage = [](std::optional<double> coverage) {
    PlanInput in = hotAndCool();
    in.islands[1].memNodes = {1};
    VmState pinned, big;
    pinned.workload = 1, pinned.name = "pinned", pinned.island = "hot";
    pinned.flexibility = Flexibility::Pinned;
    pinned.demand = flatProfile(6, 7, 7.5);
    big.workload = 2, big.name = "big", big.island = "hot";
    big.demand = flatProfile(4, 4.5, 5);
    big.residentBytes = 1ULL << 30;
    if (coverage) {
      big.demand.trackedCount = 2;
      // Short horizons look fine.
      big.demand.accuracy[0] = {.horizon = 1, .mase = 0.5f, .coverage95 = 0.95f, .errors = 100};
      big.demand.accuracy[1] = {
          .horizon = 12, .mase = 3.0f, .coverage95 = float(*coverage), .errors = 100};
    }
    in.vms = {pinned, big};
    return in;
  };
  PlannerConfig config = enforcing();
  config.cacheWarmupSecondsPerCpu = 1e6;  // resizes priced out: only the move can pay
  config.minMoveCoverage = 0.8;

  Planner unknown = makePlanner(config);
  PlanResult fresh = unknown.plan(withCoverage(std::nullopt));
  const Decision* plain = firstTaken(fresh);
  ASSERT_NE(plain, nullptr);
  EXPECT_EQ(plain->action, ActionKind::MoveVm);

  Planner covered = makePlanner(config);
  PlanResult good = covered.plan(withCoverage(0.9));
  const Decision* scaled = firstTaken(good);
  ASSERT_NE(scaled, nullptr);
  EXPECT_EQ(scaled->vmName, "big");
  EXPECT_NEAR(scaled->benefit, plain->benefit * 0.9 / 0.95, 1e-6 * plain->benefit);

  Planner stale = makePlanner(config);
  PlanResult refused = stale.plan(withCoverage(0.5));
  EXPECT_EQ(firstTaken(refused), nullptr);
  bool sawStale = false;
  for (const auto& d : refused.decisions)
    if (d.rule == Rule::StaleForecast) {
      sawStale = true;
      EXPECT_NE(d.reason.find("covered only 50%"), std::string::npos) << d.reason;
    }
  EXPECT_TRUE(sawStale) << toJson(refused).dump(2);
}

TEST(Planner, CriticalAndPinnedVmsNeverMove) {
  PlannerConfig config = enforcing();
  config.cacheWarmupSecondsPerCpu = 1e6;
  Planner planner = makePlanner(config);
  PlanInput in = hotAndCool();
  VmState a, b;
  a.workload = 1, a.name = "a", a.island = "hot", a.flexibility = Flexibility::Critical;
  a.demand = flatProfile(5, 6, 6.5);
  b.workload = 2, b.name = "b", b.island = "hot", b.flexibility = Flexibility::Pinned;
  b.demand = flatProfile(5, 6, 6.5);
  in.vms = {a, b};
  for (const auto& d : planner.plan(in).decisions) EXPECT_NE(d.action, ActionKind::MoveVm);
}

TEST(Planner, ResizeFollowsTheTopology) {
  // Two nodes of 8 cores x 2 threads; the receiver on node 0 and two idle
  // donors, one per node: CPUs come from the same node, whole cores.
  HostSpec spec;
  spec.cpus = 32;
  spec.nodes = 2;
  spec.smt = 2;
  auto topology = simulatedTopology(spec);
  ASSERT_TRUE(topology) << topology.error().message();
  Planner planner = makePlanner(enforcing());
  PlanInput in;
  in.nowNs = 1000 * kStepNs;
  in.host.topology = &topology.value();
  in.islands.push_back(island("remote", cpuRange(16, 8), flatProfile(1, 1.5, 2), 1));
  in.islands.push_back(island("hot", cpuRange(0, 8), flatProfile(10, 11, 12), 0));
  in.islands.push_back(island("local", cpuRange(8, 8), flatProfile(1, 1.5, 2), 0));
  const PlanResult result = planner.plan(in);
  const Decision* d = firstTaken(result);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->fromIsland, "local");
  ASSERT_EQ(d->cpusMoved.size() % 2, 0u);
  for (size_t i = 0; i < d->cpusMoved.size(); i += 2) {
    EXPECT_EQ(d->cpusMoved[i] % 2, 0u);  // siblings (2k, 2k+1) move together
    EXPECT_EQ(d->cpusMoved[i + 1], d->cpusMoved[i] + 1);
  }
}

TEST(Planner, RejectsABadConfigurationNamingTheField) {
  PlannerConfig config;
  config.margin = 10;  // above maxMargin
  auto planner = Planner::create(config);
  ASSERT_FALSE(planner);
  EXPECT_NE(planner.error().message().find("margin"), std::string::npos);
  config = PlannerConfig{};
  config.horizonSteps = 0;
  EXPECT_FALSE(Planner::create(config));
}

TEST(OutcomeLoop, ShortfallsRaiseTheMarginAndLowerTrustWithinBounds) {
  PlannerConfig config = enforcing();
  config.islandMovesPerWindow = 1000;
  config.hostMovesPerWindow = 1000;
  config.islandCooldownNs = 0;
  config.hysteresisWindowNs = 0;
  Planner planner = makePlanner(config);
  int64_t now = 1000 * kStepNs;
  for (int i = 0; i < 40; ++i) {
    PlanResult result = planner.plan(hotAndCool(now));
    ASSERT_FALSE(result.toExecute().empty()) << i;
    const uint64_t id = result.toExecute()[0];
    planner.reportCompleted(id, now);
    auto records = planner.recordOutcome(id, 0.0, now + kStepNs);
    if (i == 0) {
      ASSERT_EQ(records.size(), 2u);
      EXPECT_EQ(records[0].field, "trust");
      EXPECT_EQ(records[0].island, "hot");
      EXPECT_LT(records[0].after, records[0].before);
      EXPECT_EQ(records[1].field, "margin");
      EXPECT_GT(records[1].after, records[1].before);
    }
    // A second report of the same outcome changes nothing.
    EXPECT_TRUE(planner.recordOutcome(id, 0.0, now + kStepNs).empty());
    now += 12 * kStepNs;
  }
  EXPECT_DOUBLE_EQ(planner.trust("hot"), config.minTrust);
  EXPECT_LE(planner.margin(), config.maxMargin);
  EXPECT_GE(planner.margin(), config.margin);
  auto json = planner.tuningJson();
  EXPECT_EQ(json["trust"]["hot"], config.minTrust);
  EXPECT_FALSE(json["changes"].empty());
}

TEST(OutcomeLoop, BetterThanPredictedLowersTheMarginToItsFloor) {
  PlannerConfig config = enforcing();
  config.islandMovesPerWindow = 1000;
  config.hostMovesPerWindow = 1000;
  config.islandCooldownNs = 0;
  Planner planner = makePlanner(config);
  int64_t now = 1000 * kStepNs;
  for (int i = 0; i < 30; ++i) {
    PlanResult result = planner.plan(hotAndCool(now));
    ASSERT_FALSE(result.toExecute().empty());
    const uint64_t id = result.toExecute()[0];
    planner.reportCompleted(id, now);
    planner.recordOutcome(id, 1e9, now + kStepNs);
    now += 12 * kStepNs;
  }
  EXPECT_DOUBLE_EQ(planner.margin(), config.minMargin);
  EXPECT_LE(planner.trust("hot"), config.maxTrust);
  EXPECT_GT(planner.trust("hot"), 1.0);
}

TEST(OutcomeLoop, OutcomeWithinToleranceChangesNoMargin) {
  Planner planner = makePlanner(enforcing());
  PlanResult result = planner.plan(hotAndCool());
  const Decision& d = result.decisions[0];
  const double predicted = d.islands[0].overloadBefore - d.islands[0].overloadAfter;
  planner.reportCompleted(d.id, 0);
  auto records = planner.recordOutcome(d.id, predicted, 0);
  for (const auto& r : records) EXPECT_NE(r.field, "margin");
  EXPECT_DOUBLE_EQ(planner.margin(), PlannerConfig{}.margin);
}

// The outcome loop's settings for the tuning tests: every pass may act.
PlannerConfig outcomeLoopConfig() {
  PlannerConfig config = enforcing();
  config.islandMovesPerWindow = 1000;
  config.hostMovesPerWindow = 1000;
  config.islandCooldownNs = 0;
  config.hysteresisWindowNs = 0;
  return config;
}

// One action on hot/cool at `now`, completed, and its outcome.
void actAndMeasure(Planner& planner, int64_t now, double realised) {
  PlanResult result = planner.plan(hotAndCool(now));
  ASSERT_EQ(result.toExecute().size(), 1u);
  const uint64_t id = result.toExecute()[0];
  planner.reportCompleted(id, now);
  planner.recordOutcome(id, realised, now + kStepNs);
}

// A planner started again on the tuning journaled by the one before it (as
// toJson wrote it) goes on where that one left off: the same margin, trust
// and change count, and the next outcome moves them as it would have
// without the restart (the weighted relief behind them came back too).
TEST(OutcomeLoop, TuningRestoredAfterARestartGoesOnWhereItLeftOff) {
  const PlannerConfig config = outcomeLoopConfig();
  Planner before = makePlanner(config);
  int64_t now = 1000 * kStepNs;
  for (int i = 0; i < 3; ++i, now += 12 * kStepNs) actAndMeasure(before, now, 0.0);
  ASSERT_GT(before.margin(), config.margin);
  ASSERT_LT(before.trust("hot"), 1.0);

  auto journaled = tuningStateFromJson(nlohmann::json::parse(toJson(before.tuningState()).dump()));
  ASSERT_TRUE(journaled) << journaled.error().message();
  Planner after = makePlanner(config);
  auto restored = after.restoreTuning(*journaled, {"hot", "cool"});
  ASSERT_TRUE(restored) << restored.error().message();
  EXPECT_FALSE(restored->marginClamped);
  EXPECT_TRUE(restored->trustClamped.empty());
  EXPECT_TRUE(restored->droppedIslands.empty());
  EXPECT_DOUBLE_EQ(after.margin(), before.margin());
  EXPECT_DOUBLE_EQ(after.trust("hot"), before.trust("hot"));
  EXPECT_EQ(after.tuningChanges(), before.tuningChanges());
  EXPECT_EQ(after.tuningJson()["changes_total"], before.tuning().size());
  // The count came back, the list did not: those changes are before this start.
  EXPECT_TRUE(after.tuning().empty());
  EXPECT_EQ(after.tuningChangesRestored(), before.tuningChanges());
  EXPECT_EQ(after.tuningJson()["changes_before_start"], before.tuningChanges());

  // An outcome twice the prediction: both planners weigh it against the
  // same history.
  for (Planner* planner : {&before, &after}) {
    const Decision d = planner->plan(hotAndCool(now)).decisions[0];
    ASSERT_TRUE(d.execute);
    planner->reportCompleted(d.id, now);
    const double predicted = d.islands[0].overloadBefore - d.islands[0].overloadAfter;
    planner->recordOutcome(d.id, 2 * predicted, now + kStepNs);
  }
  EXPECT_DOUBLE_EQ(after.trust("hot"), before.trust("hot"));
  EXPECT_DOUBLE_EQ(after.margin(), before.margin());
  EXPECT_EQ(after.tuningChanges(), before.tuningChanges());
}

// A planner that runs for months keeps tuning: only the most recent changes
// are kept for tuningJson(), while the count goes on over all of them.
TEST(OutcomeLoop, KeepsTheMostRecentTuningChangesAndCountsThemAll) {
  Planner planner = makePlanner(outcomeLoopConfig());
  std::vector<TuningRecord> made;
  int64_t now = 1000 * kStepNs;
  // Runs of shortfalls and of outcomes well above the prediction swing the
  // margin and trust up and down, so changes keep coming.
  for (int i = 0; made.size() < Planner::kTuningLimit + 40 && i < 5000; ++i) {
    PlanResult result = planner.plan(hotAndCool(now));
    ASSERT_EQ(result.toExecute().size(), 1u) << i;
    const Decision& d = result.decisions[0];
    ASSERT_TRUE(d.execute) << i;
    planner.reportCompleted(d.id, now);
    const double predicted = d.islands[0].overloadBefore - d.islands[0].overloadAfter;
    const double realised = (i / 8) % 2 == 0 ? 0.0 : 3 * predicted;
    for (const TuningRecord& r : planner.recordOutcome(d.id, realised, now + kStepNs))
      made.push_back(r);
    now += 12 * kStepNs;
  }
  ASSERT_GT(made.size(), Planner::kTuningLimit);

  EXPECT_EQ(planner.tuningChanges(), made.size());
  ASSERT_EQ(planner.tuning().size(), Planner::kTuningLimit);
  const size_t dropped = made.size() - Planner::kTuningLimit;
  for (size_t i = 0; i < Planner::kTuningLimit; ++i) {
    const TuningRecord& kept = planner.tuning()[i];
    const TuningRecord& expected = made[dropped + i];
    EXPECT_EQ(kept.decision, expected.decision) << i;
    EXPECT_EQ(kept.field, expected.field) << i;
    EXPECT_EQ(kept.atNs, expected.atNs) << i;
  }
  const nlohmann::json json = planner.tuningJson();
  EXPECT_EQ(json["changes_total"], made.size());
  EXPECT_EQ(json["changes_before_start"], 0u);
  ASSERT_EQ(json["changes"].size(), Planner::kTuningLimit);
  EXPECT_EQ(json["changes"].back()["decision"], made.back().decision);
}

// The configuration in force bounds what comes back: bounds narrowed since
// clamp the margin and trust, and an island no longer configured is dropped.
TEST(OutcomeLoop, RestoredTuningIsClampedToTheBoundsAndIslandsInForce) {
  TuningState journaled;
  journaled.margin = 2.5;
  journaled.trust = {{"hot", 0.3}, {"cool", 1.2}, {"gone", 0.5}};
  journaled.islandRelief = {{"hot", {3, 10, 4}}, {"gone", {1, 2, 1}}};
  journaled.hostRelief = {4, 12, 5};
  journaled.changes = 9;
  PlannerConfig config = enforcing();
  config.maxMargin = 1.0;
  config.minTrust = 0.5;
  Planner planner = makePlanner(config);
  auto restored = planner.restoreTuning(journaled, {"hot", "cool"});
  ASSERT_TRUE(restored) << restored.error().message();
  EXPECT_TRUE(restored->marginClamped);
  EXPECT_DOUBLE_EQ(planner.margin(), 1.0);
  EXPECT_EQ(restored->trustClamped, std::vector<std::string>{"hot"});
  EXPECT_DOUBLE_EQ(planner.trust("hot"), 0.5);
  EXPECT_DOUBLE_EQ(planner.trust("cool"), 1.2);
  EXPECT_EQ(restored->droppedIslands, std::vector<std::string>{"gone"});
  EXPECT_DOUBLE_EQ(planner.trust("gone"), 1.0);
  const TuningState now = planner.tuningState();
  EXPECT_EQ(now.trust.count("gone"), 0u);
  EXPECT_EQ(now.islandRelief.count("gone"), 0u);
  EXPECT_EQ(now.islandRelief.at("hot").outcomes, 4u);
  EXPECT_EQ(now.hostRelief.outcomes, 5u);
  EXPECT_EQ(planner.tuningChanges(), 9u);
}

// A value that is not finite, or a negative predicted relief, refuses the
// whole state: the planner keeps its defaults. A record that is not what
// toJson wrote is refused naming the field.
TEST(OutcomeLoop, RestoringATuningThatIsNotFiniteChangesNothing) {
  TuningState good;
  good.margin = 1.0;
  good.trust = {{"hot", 0.5}};
  good.islandRelief = {{"hot", {1, 2, 1}}};
  good.hostRelief = {1, 2, 1};
  std::vector<std::pair<std::string, TuningState>> bad(4, {"", good});
  bad[0].first = "margin", bad[0].second.margin = std::nan("");
  bad[1].first = "trust.hot", bad[1].second.trust["hot"] = INFINITY;
  bad[2].first = "relief.host.realised", bad[2].second.hostRelief.realised = std::nan("");
  bad[3].first = "relief.islands.hot.predicted", bad[3].second.islandRelief["hot"].predicted = -1;
  for (const auto& [field, state] : bad) {
    Planner planner = makePlanner(enforcing());
    auto restored = planner.restoreTuning(state, {"hot"});
    ASSERT_FALSE(restored) << field;
    EXPECT_NE(restored.error().message().find(field), std::string::npos)
        << restored.error().message();
    EXPECT_DOUBLE_EQ(planner.margin(), PlannerConfig{}.margin) << field;
    EXPECT_DOUBLE_EQ(planner.trust("hot"), 1.0) << field;
  }

  // JSON holds no NaN: it is written as null, and refused on the way back.
  TuningState notANumber = good;
  notANumber.margin = std::nan("");
  auto parsed = tuningStateFromJson(nlohmann::json::parse(toJson(notANumber).dump()));
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message().find("margin"), std::string::npos);
  nlohmann::json noHost = toJson(good);
  noHost["relief"].erase("host");
  parsed = tuningStateFromJson(noHost);
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message().find("relief.host"), std::string::npos);
  nlohmann::json textTrust = toJson(good);
  textTrust["trust"]["hot"] = "high";
  parsed = tuningStateFromJson(textTrust);
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().message().find("trust.hot"), std::string::npos);
  EXPECT_FALSE(tuningStateFromJson(nlohmann::json::array()));
}

TEST(Verification, RevertsAMoveThatMadeThingsWorse) {
  Planner planner = makePlanner(enforcing());
  PlanInput in = hotAndCool();
  PlanResult result = planner.plan(in);
  const Decision original = result.decisions[0];
  planner.reportCompleted(original.id, in.nowNs + kSecondNs);
  MoveVerification better{original.id, in.nowNs + kStepNs, 1000, 800, 10, 10};
  EXPECT_FALSE(planner.verify(better, in));
  MoveVerification worse{original.id, in.nowNs + kStepNs, 1000, 1500, 10, 10};
  auto revert = planner.verify(worse, in);
  ASSERT_TRUE(revert);
  EXPECT_EQ(revert->rule, Rule::Revert);
  EXPECT_EQ(revert->reverses, original.id);
  EXPECT_EQ(revert->fromIsland, "hot");
  EXPECT_EQ(revert->toIsland, "cool");
  EXPECT_EQ(revert->cpusMoved, original.cpusMoved);
  EXPECT_TRUE(revert->execute);
}

TEST(Verification, RevertWaitsForTheMoveToFinish) {
  Planner planner = makePlanner(enforcing());
  PlanInput in = hotAndCool();
  const Decision original = planner.plan(in).decisions[0];
  MoveVerification worse{original.id, in.nowNs + kStepNs, 1000, 1000, 10, 5};
  EXPECT_FALSE(planner.verify(worse, in));  // still in flight
  EXPECT_EQ(planner.history().back().rule, Rule::InFlight);
}

// Only a decision this planner executed can be verified: not an unknown id,
// not one decided in observe mode, not one whose execution failed (it
// changed nothing, so a revert would be a change of its own).
TEST(Verification, RefusesADecisionItDidNotExecute) {
  Planner planner = makePlanner(enforcing());
  PlanInput in = hotAndCool();
  const Decision failed = planner.plan(in).decisions[0];
  ASSERT_TRUE(failed.execute);
  planner.reportFailed(failed.id, in.nowNs + kSecondNs);
  const size_t historyBefore = planner.history().size();
  for (uint64_t id : {failed.id, uint64_t{4242}}) {
    MoveVerification worse{id, in.nowNs + kStepNs, 1000, 5000, 10, 2};
    EXPECT_FALSE(planner.verify(worse, in)) << id;
    EXPECT_NE(planner.lastVerificationRefusal().find(std::to_string(id)), std::string::npos)
        << planner.lastVerificationRefusal();
  }
  PlannerConfig observing = enforcing();
  observing.mode = Mode::Observe;
  Planner observer = makePlanner(observing);
  const Decision onlyDecided = observer.plan(in).decisions[0];
  ASSERT_TRUE(onlyDecided.taken);
  ASSERT_FALSE(onlyDecided.execute);
  EXPECT_FALSE(observer.verify({onlyDecided.id, in.nowNs + kStepNs, 1000, 5000, 10, 2}, in));
  EXPECT_EQ(observer.verificationsRefused(), 1u);

  EXPECT_EQ(planner.verificationsRefused(), 2u);
  EXPECT_EQ(planner.history().size(), historyBefore);  // no revert, declined or taken
}

// The islands and VMs a revert would change must still be there: an island
// removed from the configuration since (or a VM gone) is named in the
// refusal, and no revert is proposed or recorded.
TEST(Verification, NoRevertNamesAnIslandOrVmAbsentFromTheInput) {
  Planner planner = makePlanner(enforcing());
  PlanInput in = hotAndCool();
  const Decision resize = planner.plan(in).decisions[0];
  ASSERT_EQ(resize.action, ActionKind::ResizeIsland);
  planner.reportCompleted(resize.id, in.nowNs + kSecondNs);
  PlanInput withoutCool = in;
  withoutCool.islands.pop_back();
  ASSERT_EQ(withoutCool.islands.back().name, "hot");
  const size_t historyBefore = planner.history().size();
  MoveVerification worse{resize.id, in.nowNs + kStepNs, 1000, 5000, 10, 10};
  EXPECT_FALSE(planner.verify(worse, withoutCool));
  EXPECT_EQ(planner.verificationsRefused(), 1u);
  EXPECT_NE(planner.lastVerificationRefusal().find("'cool'"), std::string::npos)
      << planner.lastVerificationRefusal();
  EXPECT_EQ(planner.history().size(), historyBefore);
  // With both islands there, the same measurement reverts the resize.
  auto revert = planner.verify(worse, in);
  ASSERT_TRUE(revert);
  EXPECT_EQ(revert->reverses, resize.id);

  // A VM move (only moves can pay for themselves) whose VM has gone since.
  PlannerConfig config = enforcing();
  config.cacheWarmupSecondsPerCpu = 1e6;
  Planner mover = makePlanner(config);
  PlanInput withVm = hotAndCool();
  VmState vm;
  vm.workload = 7, vm.name = "web", vm.island = "hot";
  vm.demand = flatProfile(4, 5, 5.5);
  withVm.vms = {vm};
  const Decision move = mover.plan(withVm).decisions[0];
  ASSERT_TRUE(move.execute) << move.reason;
  ASSERT_EQ(move.action, ActionKind::MoveVm);
  mover.reportCompleted(move.id, withVm.nowNs + kSecondNs);
  PlanInput vmGone = withVm;
  vmGone.vms.clear();
  MoveVerification slower{move.id, withVm.nowNs + kStepNs, 1000, 5000, 10, 10};
  EXPECT_FALSE(mover.verify(slower, vmGone));
  EXPECT_EQ(mover.verificationsRefused(), 1u);
  EXPECT_NE(mover.lastVerificationRefusal().find("web"), std::string::npos)
      << mover.lastVerificationRefusal();
  auto moveBack = mover.verify(slower, withVm);
  ASSERT_TRUE(moveBack);
  EXPECT_EQ(moveBack->vm, 7u);
  EXPECT_EQ(moveBack->toIsland, "hot");
}

// Proactive balance: an island not at risk whose capacity has fallen behind
// its p99 peak relative to the rest of the host gets CPUs from the island
// with the most beyond the host's ratio; within the band nothing happens, and
// a band of 0 turns the rule off.
TEST(Planner, BalanceGrowsAnIslandThatFellBehindBeforeItIsAtRisk) {
  auto layout = [](unsigned shortCpus) {
    PlanInput in;
    in.nowNs = 1000 * kStepNs;
    // Below its capacity at p99 (so not at risk) but with a tail past it.
    in.islands.push_back(island("short", cpuRange(0, shortCpus), flatProfile(6, 7, 7.9)));
    in.islands.push_back(
        island("roomy", cpuRange(shortCpus, 16 - shortCpus), flatProfile(2, 2.5, 3)));
    in.host.nodes = {{0, cpuRange(0, 16)}};
    return in;
  };
  PlannerConfig config = enforcing();
  config.balanceBand = 0.15;
  Planner planner = makePlanner(config);
  const PlanResult result = planner.plan(layout(8));
  ASSERT_EQ(result.decisions.size(), 1u);
  const Decision& d = result.decisions[0];
  EXPECT_TRUE(d.taken) << d.reason;
  EXPECT_TRUE(d.execute);
  EXPECT_EQ(d.action, ActionKind::ResizeIsland);
  EXPECT_EQ(d.fromIsland, "roomy");
  EXPECT_EQ(d.toIsland, "short");
  EXPECT_EQ(d.rule, Rule::BenefitExceedsCost);
  EXPECT_GT(d.benefit, d.cost.total() * (1 + d.margin));
  EXPECT_NE(d.reason.find("balance"), std::string::npos) << d.reason;
  ASSERT_EQ(d.islands.size(), 2u);
  EXPECT_LT(d.islands[0].contentionBefore, config.riskThreshold);  // not at risk yet
  // short needs 7.9 x 1.05, roomy 3 x 1.05; the host holds 16 / 11.45 =
  // 1.40x: short reaches it short of 3.6 cores, roomy keeps 1.40 x 3.15.
  EXPECT_EQ(d.cpusMoved.size(), 3u);

  // Within the band (short at 11 CPUs holds 1.33x against 0.85 x 1.40): nothing.
  Planner balanced = makePlanner(config);
  EXPECT_TRUE(balanced.plan(layout(11)).decisions.empty());
  // Off.
  config.balanceBand = 0;
  Planner off = makePlanner(config);
  EXPECT_TRUE(off.plan(layout(8)).decisions.empty());
}

}  // namespace
}  // namespace Atoll::planner
