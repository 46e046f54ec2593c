// The islands' desired state without root: "islands/NAME" values (parsed,
// written back, refused with the offending value named), "pins/WORKLOAD"
// values as the operator and the planner write them, and the membership
// plan: which workloads move where given desired and observed placement.
#include <gtest/gtest.h>

#include "runtime/IslandMembership.h"
#include "runtime/IslandSubsystem.h"

namespace Atoll {
namespace {

IslandSettings configured(const std::string& name, const std::string& cpus) {
  return {name, *CpuSet::parse(cpus), {}, 1};
}

TEST(IslandStateValue, EverySettingReadsBackAsWritten) {
  const nlohmann::json value = {{"cpus", "2-3"},
                                {"mems", "1"},
                                {"exclusivity", "root"},
                                {"limits",
                                 {{"cpu.weight", 200},
                                  {"cpu.max", "50000 100000"},
                                  {"memory.min", 1024},
                                  {"memory.low", 2048},
                                  {"memory.high", 4096},
                                  {"memory.max", 8192},
                                  {"io.weight", 300}}},
                                {"selectors", {"vm:db-*", "machine.slice/*"}}};
  auto parsed = parseIslandStateValue("db", value);
  ASSERT_TRUE(parsed) << parsed.error().message();
  ASSERT_TRUE(parsed->has_value());
  const DesiredIsland& island = **parsed;
  EXPECT_EQ(island.settings.cpus.toString(), "2-3");
  EXPECT_EQ(island.settings.mems.toString(), "1");
  EXPECT_EQ(island.exclusivity, numa::Exclusivity::Root);
  ASSERT_TRUE(island.limits);
  EXPECT_EQ(island.limits->cpuWeight, 200u);
  EXPECT_EQ(island.limits->cpuMax, "50000 100000");
  EXPECT_EQ(island.limits->memoryMax, 8192u);
  EXPECT_EQ(island.limits->ioWeight, 300u);
  EXPECT_EQ(island.selectors, (std::vector<std::string>{"vm:db-*", "machine.slice/*"}));
  EXPECT_EQ(islandStateValue(island), value);
}

TEST(IslandStateValue, OnlyCpusIsRequiredAndTheRestStaysUnstated) {
  auto parsed = parseIslandStateValue("batch", {{"cpus", "4"}});
  ASSERT_TRUE(parsed) << parsed.error().message();
  EXPECT_FALSE((*parsed)->exclusivity);
  EXPECT_FALSE((*parsed)->limits);
  EXPECT_TRUE((*parsed)->selectors.empty());
  EXPECT_EQ(islandStateValue(**parsed), (nlohmann::json{{"cpus", "4"}}));
}

TEST(IslandStateValue, BadValuesAreRefusedNamingTheValue) {
  struct Case {
    nlohmann::json value;
    std::string named;
  };
  const std::vector<Case> cases = {
      {{{"cpus", 3}}, "cpus"},
      {{{"cpus", "1"}, {"exclusivity", "solo"}}, "solo"},
      {{{"cpus", "1"}, {"limits", {{"cpu.weight", 20000}}}}, "20000"},
      {{{"cpus", "1"}, {"limits", {{"cpu.shares", 5}}}}, "cpu.shares"},
      {{{"cpus", "1"}, {"limits", {{"memory.max", -1}}}}, "memory.max"},
      {{{"cpus", "1"}, {"selectors", {"vm-metadata:"}}}, "vm-metadata:"},
      {{{"cpus", "1"}, {"selectors", {17}}}, "17"},
      {{{"cpus", "1"}, {"colour", "red"}}, "colour"},
      {{{"cpus", "1-"}}, "1-"},
  };
  for (const auto& c : cases) {
    auto parsed = parseIslandStateValue("db", c.value);
    ASSERT_FALSE(parsed) << c.value.dump();
    EXPECT_NE(parsed.error().message().find(c.named), std::string::npos)
        << parsed.error().message();
  }
  EXPECT_FALSE(parseIslandStateValue("bad name", {{"cpus", "1"}}));
}

TEST(IslandStateValue, TheAbsentTombstoneRemovesAConfiguredIsland) {
  auto tombstone = parseIslandStateValue("latency", {{"absent", true}});
  ASSERT_TRUE(tombstone);
  EXPECT_FALSE(tombstone->has_value());
  std::vector<StateEntry> entries = {
      {"islands/latency", {{"absent", true}}, 3},
      {"islands/db", {{"cpus", "4-5"}, {"exclusivity", "isolated"}}, 4}};
  std::vector<std::string> problems, absent;
  auto desired = desiredIslands({configured("latency", "2-3"), configured("batch", "6")}, entries,
                                problems, &absent);
  ASSERT_EQ(desired.size(), 2u);
  EXPECT_EQ(desired[0].settings.name, "batch");
  EXPECT_EQ(desired[1].settings.name, "db");
  EXPECT_EQ(desired[1].exclusivity, numa::Exclusivity::Isolated);
  EXPECT_EQ(absent, std::vector<std::string>{"latency"});
  EXPECT_TRUE(problems.empty());
}

TEST(PinStateValue, OperatorAndPlannerPinsParse) {
  auto planner = parsePinStateValue("web-1", {{"island", "db"}, {"source", "planner"}});
  ASSERT_TRUE(planner) << planner.error().message();
  EXPECT_EQ(*planner, (WorkloadPin{"web-1", "db", "planner"}));
  EXPECT_EQ(pinStateValue(*planner), (nlohmann::json{{"island", "db"}, {"source", "planner"}}));
  auto process = parsePinStateValue("pid:42", {{"island", "shared"}});
  ASSERT_TRUE(process) << process.error().message();
  EXPECT_EQ(process->source, "operator");
  EXPECT_EQ(parsePinStateValue("vm:web-2", {{"island", "db"}})->workload, "web-2");
}

TEST(PinStateValue, BadPinsAreRefusedNamingTheValue) {
  auto robot = parsePinStateValue("web-1", {{"island", "db"}, {"source", "robot"}});
  ASSERT_FALSE(robot);
  EXPECT_NE(robot.error().message().find("robot"), std::string::npos);
  auto extra = parsePinStateValue("web-1", {{"island", "db"}, {"cpus", "1"}});
  ASSERT_FALSE(extra);
  EXPECT_NE(extra.error().message().find("cpus"), std::string::npos);
  auto island = parsePinStateValue("web-1", {{"island", "no/such"}});
  ASSERT_FALSE(island);
  EXPECT_NE(island.error().message().find("no/such"), std::string::npos);
  EXPECT_FALSE(parsePinStateValue("web-1", "db"));
  auto pid = parseWorkloadName("pid:12x");
  ASSERT_FALSE(pid);
  EXPECT_NE(pid.error().message().find("pid:12x"), std::string::npos);
  EXPECT_FALSE(parseWorkloadName("pid:0"));
  EXPECT_FALSE(parseWorkloadName("vm:"));
}

TEST(IslandOfCgroup, ReadsTheIslandFromTheV2Line) {
  EXPECT_EQ(islandOfCgroup("0::/atoll.slice/db\n", "atoll.slice"), "db");
  EXPECT_EQ(islandOfCgroup("1:cpuset:/\n0::/atoll.slice/db/vm-1\n", "atoll.slice"), "db");
  EXPECT_EQ(islandOfCgroup("0::/user.slice/session-1.scope\n", "atoll.slice"), "shared");
  EXPECT_EQ(islandOfCgroup("0::/atoll.slicey/db\n", "atoll.slice"), "shared");
  EXPECT_EQ(islandOfCgroup("0::/atoll.slice\n", "atoll.slice"), "shared");
  EXPECT_EQ(islandOfCgroup("0::/\n", "atoll.slice"), "shared");
}

TEST(IslandOfPinning, OnlyAnExactMatchOfEveryThreadAndTheMemoryCounts) {
  numa::Island db{"db", {2, 3}, {1}, numa::Exclusivity::Shared, {}};
  numa::Island shared{"shared", {0, 1}, {0, 1}, numa::Exclusivity::Shared, {}};
  numa::DomainPinning pinning;
  pinning.vcpus = {{2, 3}, {2, 3}};
  pinning.emulator = {2, 3};
  pinning.iothreads = {{1, {2, 3}}};
  pinning.memoryNodes = {1};
  EXPECT_EQ(islandOfPinning(pinning, {shared, db}), "db");
  pinning.iothreads[0].cpus = {0, 1, 2, 3};
  EXPECT_EQ(islandOfPinning(pinning, {shared, db}), "");
  pinning.iothreads[0].cpus = {2, 3};
  pinning.memoryNodes = {0, 1};
  EXPECT_EQ(islandOfPinning(pinning, {shared, db}), "");
}

TEST(MembershipPlan, MovesOnlyWhatIsElsewhereAndPinsWinOverSelectors) {
  const std::set<std::string> islands = {"db", "web"};
  const std::vector<WorkloadPin> pins = {
      {"pid:10", "db", "operator"}, {"vm-a", "web", "planner"}, {"pid:11", "shared", "operator"}};
  const std::vector<SelectedWorkload> selected = {
      {"vm-a", "db", "vm:vm-*"}, {"vm-b", "db", "vm:vm-*"}, {"pid:12", "web", "web.slice/*"}};
  std::map<std::string, ObservedWorkload> observed = {{"pid:10", {true, "shared"}},
                                                      {"vm-a", {true, ""}},
                                                      {"pid:11", {true, "db"}},
                                                      {"vm-b", {true, "db"}},
                                                      {"pid:12", {true, "shared"}}};
  MembershipPlan plan = planMembership(pins, selected, islands, observed);
  EXPECT_TRUE(plan.problems.empty()) << plan.problems.front();
  const std::vector<MembershipMove> expected = {{"pid:10", "shared", "db", "pin:operator"},
                                                {"pid:11", "db", "shared", "pin:operator"},
                                                {"pid:12", "shared", "web", "selector:web.slice/*"},
                                                {"vm-a", "", "web", "pin:planner"}};
  EXPECT_EQ(plan.moves, expected);

  // After the moves a second pass changes nothing.
  for (const auto& move : plan.moves) observed[move.workload].island = move.to;
  EXPECT_TRUE(planMembership(pins, selected, islands, observed).moves.empty());
}

TEST(MembershipPlan, PinsThatCannotBeHonouredAreProblemsNotMoves) {
  const std::vector<WorkloadPin> pins = {{"pid:10", "gone", "operator"},
                                         {"pid:11", "db", "operator"}};
  const std::vector<SelectedWorkload> selected = {{"pid:12", "db", "db.slice/*"}};
  std::map<std::string, ObservedWorkload> observed = {{"pid:10", {true, "shared"}},
                                                      {"pid:11", {false, ""}}};
  MembershipPlan plan = planMembership(pins, selected, {"db"}, observed);
  EXPECT_TRUE(plan.moves.empty());
  ASSERT_EQ(plan.problems.size(), 2u);
  EXPECT_NE(plan.problems[0].find("gone"), std::string::npos) << plan.problems[0];
  EXPECT_NE(plan.problems[1].find("pid:11"), std::string::npos) << plan.problems[1];
}

TEST(MembershipPlan, AWorkloadTwoIslandsSelectStaysWithTheFirstAndIsReported) {
  const std::vector<SelectedWorkload> selected = {{"vm-a", "db", "vm:vm-*"},
                                                  {"vm-a", "web", "vm:*-a"}};
  std::map<std::string, ObservedWorkload> observed = {{"vm-a", {true, "shared"}}};
  MembershipPlan plan = planMembership({}, selected, {"db", "web"}, observed);
  ASSERT_EQ(plan.moves.size(), 1u);
  EXPECT_EQ(plan.moves[0].to, "db");
  ASSERT_EQ(plan.problems.size(), 1u);
  EXPECT_NE(plan.problems[0].find("web"), std::string::npos);
}

// A half-way host (the rollback left writes in place) is never recorded as
// restored.
TEST(IslandApplyOutcome, ARollbackThatLeftWritesIsNotRecordedAsRolledBack) {
  EXPECT_EQ(applyOutcome(true, {}), ActionOutcome::Completed);
  EXPECT_EQ(applyOutcome(false, {}), ActionOutcome::RolledBack);
  const std::vector<Error> left = {
      Error::invalid("write back", "/sys/fs/cgroup/atoll/db/cpuset.cpus", "0-3", "EBUSY")};
  EXPECT_EQ(applyOutcome(false, left), ActionOutcome::RollbackIncomplete);
  EXPECT_EQ(actionOutcomeName(ActionOutcome::RollbackIncomplete), "rollback_incomplete");
}

}  // namespace
}  // namespace Atoll
