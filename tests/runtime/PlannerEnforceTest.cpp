// The planner subsystem's act phase in enforce mode, driven tick by tick as
// the daemon drives it (telemetry board, forecaster, plan, act): a VM move
// becomes the VM's pin in the desired state and the moved VM is held by the
// dwell guard; a resize is verified one forecast step later against the
// telemetry of the workloads it touched, and one that made run-queue latency
// worse is reverted through the same path.
#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "runtime/ForecastSubsystem.h"
#include "runtime/IslandMembership.h"
#include "runtime/IslandSubsystem.h"
#include "runtime/PlannerSubsystem.h"
#include "runtime/WorkloadBoard.h"
#include "tests/runtime/ApiHarness.h"
#include "tests/runtime/PlannerWorkloads.h"

namespace Atoll {
namespace {

using test::kSecond;
using test::kStart;
using test::workload;

struct Load {
  telemetry::Workload workload;
  double cores = 0;
  double runQueueP50Us = 0;
};

class PlannerEnforce : public ::testing::Test {
 protected:
  PlannerEnforce() {
    latency.name = "latency";
    latency.cpus = *CpuSet::parse("0");
    forecastSettings.step = std::chrono::seconds(1);
    forecastSettings.horizon = std::chrono::seconds(5);
    forecastSettings.season = std::chrono::seconds(0);
    plannerSettings.config.mode = planner::Mode::Enforce;
  }

  void make(unsigned hostCpus) {
    auto configured = [this] {
      std::vector<IslandSettings> all{latency};
      all.insert(all.end(), others.begin(), others.end());
      return all;
    };
    auto forecast =
        ForecastSubsystem::create(forecastSettings, board, configured, "atoll.slice", hostCpus);
    ASSERT_TRUE(forecast) << forecast.error().message();
    forecast_ = *forecast;
    auto planner = PlannerSubsystem::create([this] { return plannerSettings; }, *forecast_, board,
                                            configured, api.store(), registry, hostCpus);
    ASSERT_TRUE(planner) << planner.error().message();
    planner_ = *planner;
  }

  // One daemon tick at step `step`: telemetry, forecast, plan, act.
  void tick(int step, const std::vector<Load>& load) {
    const int64_t now = kStart + int64_t{step} * kSecond;
    telemetry::TickReport report;
    report.timestampNs = now;
    std::vector<telemetry::Workload> known;
    for (const Load& l : load) {
      telemetry::WorkloadSnapshot row;
      row.workload = l.workload;
      row.intervalSeconds = 1;
      row.cgroupCpuCores = l.cores;
      row.runqP50Us = l.runQueueP50Us;
      report.workloads.push_back(row);
      known.push_back(l.workload);
      ASSERT_TRUE(
          forecast_->ring().tryPush({{l.workload.number, forecast::Metric::Cpu}, now, l.cores}));
    }
    board.publish(report, known, {});
    forecast_->tickAt(now + 1);
    ASSERT_TRUE(planner_->planAt(now + 2));
    ASSERT_TRUE(planner_->actAt(now + 3));
  }

  // Ticks on from `step` with `load` until the planner has taken a resize
  // (by step 20 at the latest); `step` is then the next step to tick. The
  // resize's record, or null (and a failure) unless it took exactly one.
  nlohmann::json onlyResize(int& step, const std::vector<Load>& load) {
    for (; step < 20 && records("resize-island", true).empty(); ++step) tick(step, load);
    const auto resizes = records("resize-island", true);
    if (resizes.size() == 1) return resizes.front();
    ADD_FAILURE() << resizes.size() << " resizes taken: " << planner_->historyJson().dump(2);
    return nullptr;
  }

  std::vector<nlohmann::json> records(const std::string& action, bool taken) const {
    std::vector<nlohmann::json> out;
    const nlohmann::json history = planner_->historyJson();
    for (const auto& d : history["decisions"])
      if (d["action"] == action && d["taken"].get<bool>() == taken) out.push_back(d);
    return out;
  }

  std::optional<nlohmann::json> desired(const std::string& key) {
    auto entry = api.store().get(Keyspace::Desired, key);
    EXPECT_TRUE(entry) << entry.error().message();
    if (!entry || !*entry) return std::nullopt;
    return (*entry)->value;
  }

  // A VM in "latency" and one in the shared island.
  const telemetry::Workload db = workload(8, "atoll.slice/latency/machine-qemu-db.scope", "db");
  const telemetry::Workload web = workload(7, "machine.slice/machine-qemu-web.scope", "web");
  test::ApiHarness api{AccessPolicy(::getgid(), "test-admins")};
  WorkloadBoard board;
  prometheus::Registry registry;
  IslandSettings latency;
  std::vector<IslandSettings> others;  // islands besides "latency"
  ForecastSettings forecastSettings;
  PlannerSettings plannerSettings;
  std::shared_ptr<ForecastSubsystem> forecast_;
  std::shared_ptr<PlannerSubsystem> planner_;
};

// Two CPUs: "latency" holds CPU 0 and two VMs of 0.6 cores each; the shared
// island's CPU 1 carries a tenth of a core and cannot give its only CPU
// away, so relief can only come from moving a VM there.
TEST_F(PlannerEnforce, AVmMoveWritesThePinAndTheDwellHoldsTheMovedVm) {
  make(2);
  const std::vector<Load> load = {
      {workload(1, "atoll.slice/latency/machine-qemu-db.scope", "db"), 0.6, 50},
      {workload(2, "atoll.slice/latency/machine-qemu-web.scope", "web"), 0.6, 50},
      {workload(3, "machine.slice/machine-qemu-batch.scope", "batch"), 0.1, 50}};
  // The pin is written but nothing makes it real here, so the telemetry
  // keeps both VMs in "latency" and later passes want to move again.
  for (int step = 0; step < 16; ++step) tick(step, load);

  const auto moves = records("move-vm", true);
  ASSERT_FALSE(moves.empty()) << planner_->historyJson().dump(2);
  const nlohmann::json& first = moves.front();
  EXPECT_EQ(first["from"], "latency");
  EXPECT_EQ(first["to"], "shared");
  EXPECT_EQ(first["mode"], "enforce");
  EXPECT_TRUE(first["execute"].get<bool>());
  EXPECT_GT(first["benefit_core_s"].get<double>(), first["cost_core_s"]["total"].get<double>());

  const std::string vm = first["vm_name"].get<std::string>();
  auto pin = desired(std::string(kPinStatePrefix) + vm);
  ASSERT_TRUE(pin) << "no desired pin for " << vm;
  EXPECT_EQ(*pin, (nlohmann::json{{"island", "shared"}, {"source", "planner"}}));
  // A move is no resize: the islands keep their CPUs.
  EXPECT_FALSE(desired(std::string(kIslandStatePrefix) + "latency"));

  // Each VM moved at most once: the dwell guard (30 min) saw the first move.
  std::set<std::string> moved;
  for (const auto& m : moves)
    EXPECT_TRUE(moved.insert(m["vm_name"].get<std::string>()).second)
        << m["vm_name"] << " moved twice within its dwell: " << planner_->historyJson().dump(2);
  const auto describe = planner_->describe();
  EXPECT_EQ(describe["executed"].get<uint64_t>(), moves.size());
  EXPECT_EQ(describe["execution_failures"], 0);
}

TEST_F(PlannerEnforce, AnUnnamedVmIsPinnedUnderItsWorkloadNumber) {
  make(2);
  const std::vector<Load> load = {{workload(1, "atoll.slice/latency/a", ""), 0.6, 50},
                                  {workload(2, "atoll.slice/latency/b", ""), 0.6, 50},
                                  {workload(3, "machine.slice/c", "c"), 0.1, 50}};
  for (int step = 0; step < 12; ++step) tick(step, load);
  // Unnamed VMs are planned under their workload number; a number is a
  // valid pin name, so the move runs under it.
  const auto moves = records("move-vm", true);
  ASSERT_FALSE(moves.empty()) << planner_->historyJson().dump(2);
  const std::string vm = moves.front()["vm_name"].get<std::string>();
  EXPECT_TRUE(vm == "1" || vm == "2") << vm;
  auto pin = desired(std::string(kPinStatePrefix) + vm);
  ASSERT_TRUE(pin);
  EXPECT_EQ((*pin)["island"], "shared");
}

// The journaled records are a ring: a restarted daemon goes on after the
// newest record, so it overwrites the oldest ones and keeps the VM moves the
// dwell guard restores at the next start.
TEST_F(PlannerEnforce, ARestartGoesOnAfterTheNewestJournaledRecord) {
  // Before the restart the ring had wrapped: slots 0-9 hold the newest
  // records (slot 9 the move of "db"), slots 10-255 older ones.
  auto journaled = [](int64_t atNs) {
    return nlohmann::json{{"action", "none"}, {"execute", false}, {"at_ns", atNs}};
  };
  for (size_t written = 0; written < kPlannerHistory; ++written) {
    const size_t slot = (written + 10) % kPlannerHistory;  // in the order the ring was written
    const int64_t at =
        kStart - 1000 * kSecond + int64_t(slot < 10 ? slot + kPlannerHistory : slot) * kSecond;
    nlohmann::json record = journaled(at);
    if (slot == 9)
      record = {{"action", "move-vm"}, {"execute", true}, {"vm_name", "db"}, {"at_ns", at}};
    ASSERT_TRUE(api.store().put(Keyspace::Facts,
                                std::string(kPlannerDecisionPrefix) + std::to_string(slot), record,
                                {0, 0, "test"}));
  }
  plannerSettings.config.mode = planner::Mode::Observe;
  make(2);
  for (int step = 0; step < 3; ++step)
    tick(step, {{workload(1, "atoll.slice/latency/machine-qemu-db.scope", "db"), 0.1, 50}});
  const uint64_t recorded = planner_->describe()["decisions_recorded"].get<uint64_t>();
  ASSERT_GT(recorded, 0u);
  ASSERT_LT(recorded, 20u);
  auto at = [&](size_t slot) {
    auto entry = api.store().get(Keyspace::Facts,
                                 std::string(kPlannerDecisionPrefix) + std::to_string(slot));
    EXPECT_TRUE(entry && *entry);
    return entry && *entry ? (*entry)->value : nlohmann::json();
  };
  // The newest records, the move among them, are still there ...
  for (size_t slot = 0; slot < 10; ++slot) EXPECT_LT(at(slot)["at_ns"], kStart) << slot;
  EXPECT_EQ(at(9)["vm_name"], "db");
  // ... and the records after the restart took the oldest slots.
  for (size_t slot = 10; slot < 10 + recorded; ++slot)
    EXPECT_GE(at(slot)["at_ns"], kStart) << "slot " << slot;
}

// Four CPUs: "latency" holds CPU 0 and a VM of three cores; the shared
// island's CPUs 1-3 have slack, so "latency" is grown. The telemetry after
// the resize says whether it helped.
class PlannerVerify : public PlannerEnforce, public ::testing::WithParamInterface<bool> {};

TEST_P(PlannerVerify, AResizeIsRevertedOnlyWhenRunQueueLatencyGotWorse) {
  const bool worse = GetParam();
  plannerSettings.config.islandMovesPerWindow = 50;
  plannerSettings.config.hostMovesPerWindow = 50;
  make(4);
  int step = 0;
  const nlohmann::json resize = onlyResize(step, {{db, 3.0, 200}, {web, 0.1, 20}});
  ASSERT_TRUE(resize.is_object());
  ASSERT_TRUE(resize["execute"].get<bool>());
  auto grown = desired(std::string(kIslandStatePrefix) + "latency");
  ASSERT_TRUE(grown);
  ASSERT_NE((*grown)["cpus"], "0");

  // Two more ticks: the window after the resize, then its verification.
  const double after = worse ? 2000 : 40;
  tick(step, {{db, 3.0, after}, {web, 0.1, 20}});
  tick(step + 1, {{db, 3.0, after}, {web, 0.1, 20}});

  EXPECT_EQ(planner_->describe()["verified"], 1) << planner_->describe().dump();
  nlohmann::json revert;
  const nlohmann::json history = planner_->historyJson();
  for (const auto& d : history["decisions"])
    if (d.contains("reverses") && d["reverses"] == resize["id"]) revert = d;
  if (!worse) {
    EXPECT_TRUE(revert.is_null()) << revert.dump(2);
    EXPECT_EQ(planner_->describe()["reverts"], 0);
    return;
  }
  ASSERT_TRUE(revert.is_object()) << planner_->historyJson().dump(2);
  EXPECT_EQ(revert["rule"], "revert");
  EXPECT_TRUE(revert["taken"].get<bool>());
  EXPECT_TRUE(revert["execute"].get<bool>());
  EXPECT_EQ(revert["from"], "latency");
  EXPECT_EQ(revert["to"], "shared");
  EXPECT_NE(revert["reason"].get<std::string>().find("run-queue latency"), std::string::npos)
      << revert.dump();
  // Executed through the same path: the CPUs went back to the shared island.
  auto reverted = desired(std::string(kIslandStatePrefix) + "latency");
  ASSERT_TRUE(reverted);
  auto cpus = CpuSet::parse((*reverted)["cpus"].get<std::string>());
  ASSERT_TRUE(cpus);
  for (unsigned cpu : resize["cpus_moved"].get<std::vector<unsigned>>())
    EXPECT_EQ(std::count(cpus->indices().begin(), cpus->indices().end(), cpu), 0)
        << "CPU " << cpu << " still in " << reverted->dump();
  EXPECT_EQ(planner_->describe()["reverts"], 1);
  EXPECT_EQ(planner_->describe()["execution_failures"], 0);
}

// A planner decision that takes back an earlier one (the load moved the
// other way, and it cleared the hysteresis) is an action like any other: it
// is verified too. Only a revert is not.
TEST_F(PlannerEnforce, AResizeThatReversesAnEarlierOneIsVerified) {
  plannerSettings.config.islandMovesPerWindow = 50;
  plannerSettings.config.hostMovesPerWindow = 50;
  plannerSettings.config.islandCooldownNs = 0;
  plannerSettings.config.hysteresisFactor = 1;
  plannerSettings.config.allowVmMoves = false;
  make(4);
  int step = 0;
  const nlohmann::json taken = onlyResize(step, {{db, 3.0, 20}, {web, 0.1, 20}});
  ASSERT_TRUE(taken.is_object());
  const uint64_t first = taken["id"].get<uint64_t>();
  // The load turns around: the shared island needs its CPUs back.
  const int turned = step;
  for (; step < turned + 60 && records("resize-island", true).size() < 2; ++step)
    tick(step, {{db, 0.1, 20}, {web, 3.0, 20}});
  const auto resizes = records("resize-island", true);
  ASSERT_EQ(resizes.size(), 2u) << planner_->historyJson().dump(2);
  ASSERT_EQ(resizes.back()["reverses"], first) << resizes.back().dump(2);
  ASSERT_NE(resizes.back()["rule"], "revert");
  for (int more = 0; more < 2; ++more, ++step) tick(step, {{db, 0.1, 20}, {web, 3.0, 20}});
  EXPECT_EQ(planner_->describe()["verified"], 2) << planner_->describe().dump();
}

// The outcome loop in the daemon: after an executed resize, the relief it
// brought (the receiver's use beyond its old capacity, up to what it was
// given) is measured from telemetry over the horizon its benefit was
// predicted for, and fed back to the planner's tuning. A load that stays
// realises one core of relief every second; one that goes away realises
// none, and the planner then asks a larger margin and trusts the island's
// forecast less.
class PlannerOutcome : public PlannerEnforce, public ::testing::WithParamInterface<bool> {};

TEST_P(PlannerOutcome, AnExecutedResizesReliefIsMeasuredAndTunesThePlanner) {
  const bool loadStays = GetParam();
  plannerSettings.config.allowVmMoves = false;
  make(32);
  int step = 0;
  const nlohmann::json resize = onlyResize(step, {{db, 2.0, 20}, {web, 0.1, 20}});
  ASSERT_TRUE(resize.is_object());
  ASSERT_TRUE(resize["execute"].get<bool>());
  ASSERT_EQ(resize["horizon_s"], 5.0) << resize.dump(2);
  ASSERT_EQ(resize["islands"][0]["capacity_before"], 1.0) << resize.dump(2);
  ASSERT_GE(resize["islands"][0]["capacity_after"].get<double>(), 2.0) << resize.dump(2);
  EXPECT_EQ(planner_->describe()["outcomes_measuring"], 1) << planner_->describe().dump();

  // Five seconds of telemetry after the resize, then the tick that closes
  // the window.
  const double cores = loadStays ? 2.0 : 0.1;
  for (const int executed = step; step < executed + 6; ++step)
    tick(step, {{db, cores, 20}, {web, 0.1, 20}});
  EXPECT_EQ(planner_->describe()["outcomes_measuring"], 0) << planner_->describe().dump();
  EXPECT_EQ(planner_->describe()["outcomes_recorded"], 1) << planner_->describe().dump();
  const nlohmann::json tuning = planner_->tuningJson();
  ASSERT_TRUE(tuning.contains("last_outcome")) << tuning.dump(2);
  const nlohmann::json outcome = tuning["last_outcome"];
  EXPECT_EQ(outcome["decision"], resize["id"]);
  EXPECT_EQ(outcome["island"], "latency");
  EXPECT_NEAR(outcome["measured_s"].get<double>(), 5.0, 1e-6) << outcome.dump();
  EXPECT_NEAR(outcome["realised_core_s"].get<double>(), loadStays ? 5.0 : 0.0, 1e-6)
      << outcome.dump();
  EXPECT_GT(outcome["predicted_core_s"].get<double>(), 0.0) << outcome.dump();
  if (loadStays) return;
  // Nothing of the predicted relief came: the tuning moved, and outlives a
  // restart.
  EXPECT_GT(tuning["margin"].get<double>(), plannerSettings.config.margin) << tuning.dump(2);
  EXPECT_LT(tuning["trust"]["latency"].get<double>(), 1.0) << tuning.dump(2);
  auto journaled = api.store().get(Keyspace::Facts, std::string(kPlannerTuningKey));
  ASSERT_TRUE(journaled && *journaled);
  EXPECT_EQ((*journaled)->value["margin"], tuning["margin"]);
}

INSTANTIATE_TEST_SUITE_P(LoadStaysOrGoes, PlannerOutcome, ::testing::Bool());

// Without telemetry over its window an action has no outcome: relief
// measured over a part of the window would read as relief that did not come.
TEST_F(PlannerEnforce, AnActionWithoutTelemetryOverItsWindowHasNoOutcome) {
  plannerSettings.config.allowVmMoves = false;
  make(32);
  int step = 0;
  ASSERT_TRUE(onlyResize(step, {{db, 2.0, 20}, {web, 0.1, 20}}).is_object());
  ASSERT_EQ(planner_->describe()["outcomes_measuring"], 1);
  // Passes go on, telemetry does not.
  for (const int executed = step; step < executed + 8; ++step)
    ASSERT_TRUE(planner_->planAt(kStart + int64_t{step} * kSecond + 2));
  const nlohmann::json describe = planner_->describe();
  EXPECT_EQ(describe["outcomes_measuring"], 0) << describe.dump();
  EXPECT_EQ(describe["outcomes_recorded"], 0) << describe.dump();
  EXPECT_EQ(describe["outcomes_dropped"], 1) << describe.dump();
  EXPECT_EQ(planner_->tuningJson()["margin"], plannerSettings.config.margin);
}

// A VM move's relief: what the source was spared less what the target took
// on. "latency" (one CPU) carries 1.2 cores and the shared island (one CPU)
// 0.1; moving a 0.6-core VM spares the source 0.2 cores a second and costs
// the target nothing. Telemetry keeps the VM in the source here (nothing
// makes the pin real), which the measurement takes into account.
TEST_F(PlannerEnforce, AVmMovesReliefIsWhatTheSourceWasSparedLessWhatTheTargetTookOn) {
  make(2);
  const std::vector<Load> load = {
      {workload(1, "atoll.slice/latency/machine-qemu-db.scope", "db"), 0.6, 50},
      {workload(2, "atoll.slice/latency/machine-qemu-web.scope", "web"), 0.6, 50},
      {workload(3, "machine.slice/machine-qemu-batch.scope", "batch"), 0.1, 50}};
  int step = 0;
  for (; step < 16 && records("move-vm", true).empty(); ++step) tick(step, load);
  ASSERT_FALSE(records("move-vm", true).empty()) << planner_->historyJson().dump(2);
  const nlohmann::json move = records("move-vm", true).front();
  ASSERT_EQ(move["horizon_s"], 5.0) << move.dump(2);
  for (const int moved = step; step < moved + 6; ++step) tick(step, load);
  const nlohmann::json tuning = planner_->tuningJson();
  ASSERT_TRUE(tuning.contains("last_outcome")) << tuning.dump(2);
  // Later moves (the pin is not made real, so the source stays at risk)
  // have windows of their own; the first one closed first.
  EXPECT_EQ(tuning["last_outcome"]["decision"], move["id"]) << tuning.dump(2);
  EXPECT_NEAR(tuning["last_outcome"]["realised_core_s"].get<double>(), 0.2 * 5, 1e-6)
      << tuning.dump(2);
}

// An outcome window open when the daemon restarts is measured to its end:
// the relief measured so far is journaled with the window, and measuring
// goes on from the first telemetry after the restart (the time the daemon
// was down counts neither way). Two seconds before the restart and two
// after it cover more than half of the five-second window.
TEST_F(PlannerEnforce, AnOutcomeWindowOpenAtARestartIsMeasuredToItsEnd) {
  plannerSettings.config.allowVmMoves = false;
  make(32);
  int step = 0;
  const std::vector<Load> load = {{db, 2.0, 20}, {web, 0.1, 20}};
  const nlohmann::json resize = onlyResize(step, load);
  ASSERT_TRUE(resize.is_object());
  const std::string key =
      std::string(kPlannerOutcomePrefix) + std::to_string(resize["id"].get<uint64_t>());
  const int executed = step;
  for (; step < executed + 2; ++step) tick(step, load);
  auto window = api.store().get(Keyspace::Facts, key);
  ASSERT_TRUE(window && *window) << "no open window journaled under " << key;
  EXPECT_NEAR((*window)->value["realised_core_s"].get<double>(), 2.0, 1e-6)
      << (*window)->value.dump(2);

  make(32);
  EXPECT_EQ(planner_->describe()["outcomes_restored"], 1) << planner_->describe().dump();
  EXPECT_EQ(planner_->describe()["outcomes_measuring"], 1) << planner_->describe().dump();
  for (; step < executed + 6; ++step) tick(step, load);
  const nlohmann::json tuning = planner_->tuningJson();
  ASSERT_TRUE(tuning.contains("last_outcome")) << tuning.dump(2);
  EXPECT_EQ(tuning["last_outcome"]["decision"], resize["id"]);
  EXPECT_NEAR(tuning["last_outcome"]["measured_s"].get<double>(), 4.0, 1e-6) << tuning.dump(2);
  EXPECT_NEAR(tuning["last_outcome"]["realised_core_s"].get<double>(), 4.0, 1e-6) << tuning.dump(2);
  EXPECT_EQ(planner_->describe()["outcomes_recorded"], 1) << planner_->describe().dump();
  auto closed = api.store().get(Keyspace::Facts, key);
  ASSERT_TRUE(closed);
  EXPECT_FALSE(*closed) << "the closed window is still journaled: " << (*closed)->value.dump();
}

// A journaled window that cannot be read, or names an action the planner
// does not know, gives no outcome and is removed.
TEST_F(PlannerEnforce, AJournaledWindowThatCannotBeMeasuredIsRemoved) {
  const ChangeOrigin origin{0, 0, "test"};
  const std::string unreadable = std::string(kPlannerOutcomePrefix) + "1";
  const std::string unknown = std::string(kPlannerOutcomePrefix) + "2";
  ASSERT_TRUE(api.store().put(Keyspace::Facts, unreadable, {{"decision", "resize"}}, origin));
  planner::Decision d;
  d.id = 2;
  d.atNs = kStart;
  d.action = planner::ActionKind::ResizeIsland;
  d.fromIsland = "shared";
  d.toIsland = "latency";
  d.cpusMoved = {1};
  d.horizonSeconds = 5;
  d.islands.push_back({"latency", 1.0, 2.0});
  ASSERT_TRUE(api.store().put(Keyspace::Facts, unknown,
                              {{"decision", planner::toJson(d)},
                               {"from_ns", kStart},
                               {"until_ns", kStart + 5 * kSecond},
                               {"last_ns", kStart + kSecond},
                               {"realised_core_s", 1.0},
                               {"measured_ns", kSecond}},
                              origin));
  make(32);
  const nlohmann::json describe = planner_->describe();
  EXPECT_EQ(describe["outcomes_restored"], 0) << describe.dump();
  EXPECT_EQ(describe["outcome_records_refused"], 2) << describe.dump();
  EXPECT_EQ(describe["outcomes_measuring"], 0) << describe.dump();
  for (const std::string& key : {unreadable, unknown}) {
    auto left = api.store().get(Keyspace::Facts, key);
    ASSERT_TRUE(left);
    EXPECT_FALSE(*left) << key;
  }
}

// The guards outlive a restart: the executed actions are journaled in a
// ring of their own, and a daemon that starts again counts them, so an
// island it just resized is not resized again at once (nor a decision id
// used twice).
TEST_F(PlannerEnforce, TheGuardsOfActionsBeforeARestartHold) {
  plannerSettings.config.allowVmMoves = false;
  make(32);
  int step = 0;
  const nlohmann::json taken = onlyResize(step, {{db, 2.0, 20}, {web, 0.1, 20}});
  ASSERT_TRUE(taken.is_object());
  const uint64_t before = taken["id"].get<uint64_t>();
  auto grown = desired(std::string(kIslandStatePrefix) + "latency");
  ASSERT_TRUE(grown);

  // The daemon starts again on the same state; the VM's demand grows past
  // what the resize gave, and the shared island could give more.
  make(32);
  EXPECT_EQ(planner_->describe()["actions_restored"], 1) << planner_->describe().dump();
  const int restarted = step;
  for (; step < restarted + 30; ++step) tick(step, {{db, 5.0, 20}, {web, 0.1, 20}});
  EXPECT_TRUE(records("resize-island", true).empty()) << planner_->historyJson().dump(2);
  const auto declined = records("resize-island", false);
  ASSERT_FALSE(declined.empty()) << planner_->historyJson().dump(2);
  EXPECT_EQ(declined.back()["rule"], "cooldown") << declined.back().dump(2);
  EXPECT_NE(
      declined.back()["reason"].get<std::string>().find("decision " + std::to_string(before) + " "),
      std::string::npos)
      << declined.back().dump(2);
  // The planner's own decisions (no-action records carry no id) are
  // numbered after the ones before the restart.
  const nlohmann::json history = planner_->historyJson();
  for (const auto& d : history["decisions"]) {
    if (d["id"] == 0) continue;
    EXPECT_GT(d["id"].get<uint64_t>(), before) << d.dump();
  }
  EXPECT_FALSE(declined.empty());
  EXPECT_EQ(desired(std::string(kIslandStatePrefix) + "latency"), grown);
}

// What the outcome loop learnt outlives a restart: it is journaled when an
// outcome changes the margin or a trust (and not before), and a daemon that
// starts again on the same state plans with it.
TEST_F(PlannerEnforce, TheTuningBeforeARestartHolds) {
  plannerSettings.config.allowVmMoves = false;
  make(32);
  int step = 0;
  const nlohmann::json taken = onlyResize(step, {{db, 2.0, 20}, {web, 0.1, 20}});
  ASSERT_TRUE(taken.is_object());
  const uint64_t resize = taken["id"].get<uint64_t>();
  auto journaled = [&] {
    auto entry = api.store().get(Keyspace::Facts, std::string(kPlannerTuningKey));
    EXPECT_TRUE(entry) << entry.error().message();
    return entry && *entry ? std::optional((*entry)->value) : std::nullopt;
  };
  EXPECT_FALSE(journaled());

  // The resize relieved nothing of what it predicted.
  const auto changes = planner_->recordOutcome(resize, 0.0, kStart + int64_t{step} * kSecond);
  ASSERT_EQ(changes.size(), 2u);
  const nlohmann::json learnt = planner_->tuningJson();
  ASSERT_GT(learnt["margin"].get<double>(), plannerSettings.config.margin) << learnt.dump(2);
  ASSERT_LT(learnt["trust"]["latency"].get<double>(), 1.0) << learnt.dump(2);
  auto record = journaled();
  ASSERT_TRUE(record);
  EXPECT_EQ((*record)["margin"], learnt["margin"]);
  // A second report of the same outcome changes nothing, and writes nothing.
  const auto revision = api.store().get(Keyspace::Facts, std::string(kPlannerTuningKey));
  EXPECT_TRUE(planner_->recordOutcome(resize, 0.0, kStart + int64_t{step + 1} * kSecond).empty());
  EXPECT_EQ((*api.store().get(Keyspace::Facts, std::string(kPlannerTuningKey)))->revision,
            (*revision)->revision);

  make(32);
  EXPECT_EQ(planner_->describe()["tuning_restored"], true) << planner_->describe().dump();
  EXPECT_EQ(planner_->describe()["tuning_records_refused"], 0);
  const nlohmann::json restored = planner_->tuningJson();
  EXPECT_EQ(restored["margin"], learnt["margin"]);
  EXPECT_EQ(restored["trust"], learnt["trust"]);
  EXPECT_EQ(restored["changes_total"], 2);
  // The passes after the restart read the margin learnt before it.
  for (const int restarted = step; step < restarted + 3; ++step)
    tick(step, {{db, 2.0, 20}, {web, 0.1, 20}});
  EXPECT_EQ(planner_->planJson()["margin"], learnt["margin"]) << planner_->planJson().dump(2);
}

// A journaled tuning is read within the configuration in force: a margin past
// bounds narrowed since is clamped, an island removed since is dropped; a
// record that cannot be read is counted and the defaults hold.
TEST_F(PlannerEnforce, AJournaledTuningIsReadWithinTheConfigurationInForce) {
  auto journal = [&](const nlohmann::json& value) {
    ASSERT_TRUE(
        api.store().put(Keyspace::Facts, std::string(kPlannerTuningKey), value, {0, 0, "test"}));
  };
  planner::TuningState state;
  state.margin = 2.5;
  state.trust = {{"latency", 0.4}, {"retired", 0.3}, {std::string(kSharedAggregateName), 1.2}};
  state.changes = 7;
  journal(planner::toJson(state));
  plannerSettings.config.maxMargin = 2.0;
  make(2);
  EXPECT_EQ(planner_->describe()["tuning_restored"], true) << planner_->describe().dump();
  nlohmann::json tuning = planner_->tuningJson();
  EXPECT_EQ(tuning["margin"], 2.0);
  EXPECT_EQ(tuning["trust"], (nlohmann::json{{"latency", 0.4}, {"shared", 1.2}}));
  EXPECT_EQ(tuning["changes_total"], 7);

  for (const nlohmann::json& unreadable :
       {nlohmann::json("planner tuning"),
        nlohmann::json{{"margin", nullptr}, {"changes", 1}, {"trust", nlohmann::json::object()}},
        [&] {
          nlohmann::json lost = planner::toJson(state);
          lost["relief"].erase("islands");
          return lost;
        }()}) {
    journal(unreadable);
    make(2);
    EXPECT_EQ(planner_->describe()["tuning_restored"], false) << unreadable.dump();
    EXPECT_EQ(planner_->describe()["tuning_records_refused"], 1) << unreadable.dump();
    tuning = planner_->tuningJson();
    EXPECT_EQ(tuning["margin"], plannerSettings.config.margin) << unreadable.dump();
    EXPECT_TRUE(tuning["trust"].empty()) << unreadable.dump();
  }
}

// An island whose forecast crosses the risk threshold through its upper
// tail alone (a sudden jump widens the tail, the p50 stays low) is kept out
// of the planner by the p50 floor; the no-action record says so rather than
// that the island stays within its capacity.
TEST_F(PlannerEnforce, ANoActionRecordNamesTheP50Floor) {
  plannerSettings.config.mode = planner::Mode::Observe;
  latency.cpus = *CpuSet::parse("0-9");
  std::vector<nlohmann::json> floored;
  // Spikes of several heights: some leave the tail short of the threshold,
  // some lift the p50 as well; those between are the case.
  for (double spike = 9.5; spike <= 15 && floored.empty(); spike += 0.5) {
    make(16);
    for (int step = 0; step < 14; ++step) {
      tick(step, {{db, step == 8 ? spike : 0.5, 20}});
      const nlohmann::json plan = planner_->planJson();
      if (plan.is_null()) continue;
      for (const auto& d : plan["decisions"]) {
        if (d.value("action", "") != "none" || d["islands"].empty()) continue;
        if (d["islands"][0]["island"] != "latency") continue;
        if (d["islands"][0]["contention_before"].get<double>() <
            plannerSettings.config.riskThreshold)
          continue;
        const std::string reason = d.value("reason", "");
        EXPECT_EQ(reason.find("stays within"), std::string::npos) << d.dump(2);
        if (reason.find("min_risk_p50_share") != std::string::npos) floored.push_back(d);
      }
    }
  }
  ASSERT_FALSE(floored.empty()) << "no spike put the island past the risk threshold by its tail";
}

// A resize between two islands writes the donor's CPUs first: if the
// receiver's write failed, the CPUs would fall to the shared island rather
// than be claimed by both islands.
TEST_F(PlannerEnforce, AResizeGivesBeforeItTakes) {
  plannerSettings.config.allowVmMoves = false;
  // The donor's name sorts after the receiver's, as islands are listed.
  IslandSettings web;
  web.name = "web";
  web.cpus = *CpuSet::parse("1-6");
  others.push_back(web);
  make(8);
  auto job = workload(9, "atoll.slice/web/machine-qemu-job.scope", "job");
  int step = 0;
  const nlohmann::json resize = onlyResize(step, {{db, 3.0, 20}, {job, 0.2, 20}});
  ASSERT_TRUE(resize.is_object());
  ASSERT_EQ(resize["from"], "web") << resize.dump(2);
  auto given = api.store().get(Keyspace::Desired, std::string(kIslandStatePrefix) + "web");
  auto taken = api.store().get(Keyspace::Desired, std::string(kIslandStatePrefix) + "latency");
  ASSERT_TRUE(given && *given && taken && *taken);
  EXPECT_LT((*given)->revision, (*taken)->revision);
}

INSTANTIATE_TEST_SUITE_P(Latency, PlannerVerify, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Worse" : "Better"; });

}  // namespace
}  // namespace Atoll
