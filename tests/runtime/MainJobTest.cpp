// The main job's pure parts: the workload board, island membership of the
// forecast aggregates, the forecast JSON, desired islands from configuration
// and desired state, and the forecast subsystem fed by hand (no root, no BPF).
#include <gtest/gtest.h>

#include <cmath>

#include "runtime/ForecastJson.h"
#include "runtime/ForecastSubsystem.h"
#include "runtime/IslandMembership.h"
#include "runtime/IslandSubsystem.h"
#include "runtime/WorkloadBoard.h"

namespace Atoll {
namespace {

telemetry::Workload workload(uint32_t number, std::string path, std::string name = {},
                             std::string uuid = {}) {
  telemetry::Workload w;
  w.number = number;
  w.cgroup.cgroupId = 1000 + number;
  w.cgroup.path = std::move(path);
  w.cgroup.name = name.empty() ? w.cgroup.path : std::move(name);
  w.cgroup.uuid = std::move(uuid);
  return w;
}

IslandSettings island(std::string name, const std::string& cpus) {
  IslandSettings settings;
  settings.name = std::move(name);
  settings.cpus = *CpuSet::parse(cpus);
  return settings;
}

// A forecast subsystem of one-second steps over a 4-CPU host whose islands
// are whatever `islands` holds when it asks.
std::shared_ptr<ForecastSubsystem> oneSecondForecasts(const WorkloadBoard& board,
                                                      const std::vector<IslandSettings>& islands) {
  ForecastSettings settings;
  settings.step = std::chrono::seconds(1);
  settings.horizon = std::chrono::seconds(10);
  settings.season = std::chrono::seconds(0);
  auto created = ForecastSubsystem::create(
      settings, board, [&islands] { return islands; }, "atoll.slice", 4);
  EXPECT_TRUE(created) << created.error().message();
  return created ? std::move(created.value()) : nullptr;
}

telemetry::TickReport reportOf(const std::vector<std::pair<telemetry::Workload, double>>& rows) {
  telemetry::TickReport report;
  report.timestampNs = 1'700'000'000'000'000'000;
  for (const auto& [w, cores] : rows) {
    telemetry::WorkloadSnapshot s;
    s.workload = w;
    s.intervalSeconds = 1;
    s.cgroupCpuCores = cores;
    report.workloads.push_back(s);
  }
  return report;
}

TEST(WorkloadBoard, FindsByNumberNameUuidAndPathAndRefusesAmbiguousNames) {
  WorkloadBoard board;
  EXPECT_FALSE(board.latest());
  auto web = workload(3, "machine.slice/machine-qemu-web.scope", "web", "1b4e28ba-2fa1");
  auto batch = workload(4, "machine.slice/a.scope", "twin");
  auto other = workload(5, "machine.slice/b.scope", "twin");
  board.publish(reportOf({{web, 0.5}}), {web, batch, other}, {"network: disabled"});
  ASSERT_TRUE(board.latest());
  EXPECT_EQ((*board.latest())["workloads"][0]["name"], "web");
  EXPECT_EQ((*board.latest())["degraded"][0], "network: disabled");
  EXPECT_EQ(board.find("3")->cgroup.name, "web");
  EXPECT_EQ(board.find("web")->number, 3u);
  EXPECT_EQ(board.find("1b4e28ba-2fa1")->number, 3u);
  EXPECT_EQ(board.find("machine.slice/a.scope")->number, 4u);
  EXPECT_FALSE(board.find("twin"));
  EXPECT_FALSE(board.find("99"));
  EXPECT_EQ(board.latestCpuCores().at(3), 0.5);
  const uint64_t generation = board.generation();
  board.publish(reportOf({}), {web, batch, other}, {});
  EXPECT_EQ(board.generation(), generation);  // same workloads
  board.publish(reportOf({}), {web}, {});
  EXPECT_GT(board.generation(), generation);
}

TEST(IslandMembership, WorkloadsInAnIslandsCgroupBelongToItOthersToShared) {
  std::vector<telemetry::Workload> all = {
      workload(1, "atoll.slice/latency/vm-a"), workload(2, "atoll.slice/latency"),
      workload(3, "atoll.slice/latency-other/vm-b"), workload(4, "machine.slice/vm-c.scope")};
  auto aggregates =
      islandAggregates({island("latency", "2-3"), island("batch", "4-7")}, all, "atoll.slice", 16);
  ASSERT_EQ(aggregates.size(), 4u);
  EXPECT_EQ(aggregates[0].kind, AggregateKind::Host);
  EXPECT_EQ(aggregates[0].members, (std::vector<uint32_t>{1, 2, 3, 4}));
  EXPECT_EQ(aggregates[0].capacityCores, 16);
  EXPECT_EQ(aggregates[1].name, "shared");
  EXPECT_EQ(aggregates[1].members, (std::vector<uint32_t>{3, 4}));  // a prefix is not a parent
  EXPECT_EQ(aggregates[1].capacityCores, 10);
  EXPECT_EQ(aggregates[2].name, "latency");
  EXPECT_EQ(aggregates[2].members, (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(aggregates[2].capacityCores, 2);
  EXPECT_TRUE(aggregates[3].members.empty());
}

TEST(ForecastJson, ProfileStepsCarryHorizonsAndUnscoredAccuracyIsNull) {
  forecast::ProfileSnapshot p;
  p.stepNs = 300'000'000'000;
  p.steps = 3;
  for (int k = 0; k < 3; ++k) {
    p.p50[k] = 1.0f + k;
    p.p95[k] = 2.0f + k;
    p.p99[k] = 3.0f + k;
  }
  p.p99[2] = std::numeric_limits<float>::infinity();
  p.trackedCount = 2;
  p.accuracy[0] = {.horizon = 1, .mase = 0.8f, .coverage95 = 0.95f, .errors = 10};
  p.accuracy[1] = {.horizon = 3};
  p.capacity = 4;
  p.contentionProbability = 0.2;
  p.peakStep = 3;
  p.firstRiskStep = -1;
  nlohmann::json j = islandProfileJson(p);
  ASSERT_EQ(j["steps"].size(), 3u);
  EXPECT_EQ(j["steps"][1]["horizon_seconds"], 600.0);
  EXPECT_EQ(j["steps"][1]["p95"], 3.0);
  EXPECT_TRUE(j["steps"][2]["p99"].is_null());  // not a number JSON can carry
  EXPECT_NEAR(j["accuracy"][0]["mase"].get<double>(), 0.8, 1e-6);
  EXPECT_TRUE(j["accuracy"][1]["mase"].is_null());
  EXPECT_EQ(j["peak_step"], 3);
  EXPECT_TRUE(j["first_risk_step"].is_null());
  EXPECT_EQ(parseForecastMetric("memory"), forecast::Metric::Memory);
  EXPECT_FALSE(parseForecastMetric("disk"));
}

TEST(DesiredIslands, StateOverridesConfigAndBadEntriesAreReportedNotApplied) {
  std::vector<StateEntry> entries = {
      {"islands/latency", {{"cpus", "4-5"}, {"mems", "0"}}, 7},
      {"islands/batch", {{"cpus", "6"}}, 8},
      {"islands/broken", {{"cpus", 6}}, 9},
      {"islands/bad name", {{"cpus", "7"}}, 10},
      {"islands/empty", {{"cpus", ""}}, 11},
  };
  std::vector<std::string> problems;
  auto desired = desiredIslands({island("latency", "2-3")}, entries, problems);
  ASSERT_EQ(desired.size(), 2u);
  EXPECT_EQ(desired[0].settings.name, "latency");
  EXPECT_EQ(desired[0].settings.cpus.toString(), "4-5");
  EXPECT_EQ(desired[0].source, "state");
  EXPECT_EQ(desired[1].settings.name, "batch");
  ASSERT_EQ(problems.size(), 3u);
  EXPECT_NE(problems[0].find("islands/broken"), std::string::npos) << problems[0];
}

TEST(IslandSupport, AMountWithoutCpusetIsExplained) {
  char dir[] = "/tmp/atoll-islands-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  std::string missing = islandSupportProblem(dir);
  EXPECT_NE(missing.find("not a cgroup v2 mount"), std::string::npos) << missing;
  FILE* f = std::fopen((std::string(dir) + "/cgroup.controllers").c_str(), "w");
  std::fputs("hugetlb\n", f);
  std::fclose(f);
  std::string noCpuset = islandSupportProblem(dir);
  EXPECT_NE(noCpuset.find("no cpuset controller"), std::string::npos) << noCpuset;
  EXPECT_NE(noCpuset.find("'hugetlb'"), std::string::npos) << noCpuset;
  f = std::fopen((std::string(dir) + "/cgroup.controllers").c_str(), "w");
  std::fputs("cpuset cpu memory\n", f);
  std::fclose(f);
  EXPECT_EQ(islandSupportProblem(dir), "");
  std::remove((std::string(dir) + "/cgroup.controllers").c_str());
  ::rmdir(dir);
}

// One-second steps: after a few ticks of samples every workload has a
// short-term forecast and a profile, and the aggregates theirs.
TEST(ForecastSubsystemTest, PublishesWorkloadAndAggregateForecastsFromTheRing) {
  WorkloadBoard board;
  std::vector<IslandSettings> islands = {island("latency", "0")};
  auto created = oneSecondForecasts(board, islands);
  ASSERT_NE(created, nullptr);
  ForecastSubsystem& f = *created;
  auto a = workload(1, "atoll.slice/latency/a", "a");
  auto b = workload(2, "machine.slice/b.scope", "b");
  const int64_t start = 1'700'000'000'000'000'000;
  for (int i = 0; i < 30; ++i) {
    const int64_t now = start + int64_t{i} * 500'000'000;
    board.publish(reportOf({{a, 0.5}, {b, 1.5 + (i % 2) * 0.1}}), {a, b}, {});
    ASSERT_TRUE(f.ring().tryPush({{1, forecast::Metric::Cpu}, now, 0.5}));
    ASSERT_TRUE(f.ring().tryPush({{2, forecast::Metric::Cpu}, now, 1.5 + (i % 2) * 0.1}));
    f.tickAt(now + 1);
  }
  nlohmann::json fa = f.workloadForecast(a, forecast::Metric::Cpu);
  ASSERT_TRUE(fa["short_term"].is_object()) << fa.dump();
  EXPECT_NEAR(fa["short_term"]["p50"].get<double>(), 0.5, 1e-6);
  ASSERT_TRUE(fa["profile"].is_object()) << fa.dump();
  EXPECT_EQ(fa["profile"]["steps"].size(), 10u);
  EXPECT_EQ(fa["unit"], "cores");
  nlohmann::json memory = f.workloadForecast(a, forecast::Metric::Memory);
  EXPECT_TRUE(memory["short_term"].is_null());
  EXPECT_TRUE(memory["profile"].is_null());
  EXPECT_TRUE(memory.contains("profile_pending"));

  nlohmann::json islandsJson = f.islandsForecast();
  ASSERT_EQ(islandsJson["islands"].size(), 3u) << islandsJson.dump();
  const auto& host = islandsJson["islands"][0];
  EXPECT_EQ(host["kind"], "host");
  EXPECT_EQ(host["members"], (std::vector<uint32_t>{1, 2}));
  ASSERT_TRUE(host["profile"].is_object()) << host.dump();
  EXPECT_GT(host["profile"]["steps"][0]["p50"].get<double>(), 1.5);
  EXPECT_EQ(islandsJson["islands"][2]["name"], "latency");
  EXPECT_EQ(islandsJson["islands"][2]["members"], (std::vector<uint32_t>{1}));

  nlohmann::json history = f.workloadHistory(b);
  ASSERT_GE(history["points"].size(), 20u);
  EXPECT_TRUE(history["points"].back()["p50"].is_number());
}

// An island whose CPUs change keeps its forecast: it is redefined in place,
// so resizing it more often than the forecaster has island slots (256)
// never leaves it unforecast.
TEST(ForecastSubsystemTest, AResizedIslandKeepsItsForecastSlot) {
  WorkloadBoard board;
  std::vector<IslandSettings> islands = {island("latency", "0")};
  auto created = oneSecondForecasts(board, islands);
  ASSERT_NE(created, nullptr);
  ForecastSubsystem& f = *created;
  auto a = workload(1, "atoll.slice/latency/a", "a");
  const int64_t start = 1'700'000'000'000'000'000;
  for (int i = 0; i < 300; ++i) {
    islands = {island("latency", i % 2 == 0 ? "0" : "0-1")};
    const int64_t now = start + int64_t{i} * 1'000'000'000;
    board.publish(reportOf({{a, 0.5}}), {a}, {});
    ASSERT_TRUE(f.ring().tryPush({{1, forecast::Metric::Cpu}, now, 0.5}));
    f.tickAt(now + 1);
  }
  nlohmann::json islandsJson = f.islandsForecast();
  ASSERT_EQ(islandsJson["islands"].size(), 3u) << islandsJson.dump();
  const auto& latency = islandsJson["islands"][2];
  EXPECT_EQ(latency["name"], "latency");
  EXPECT_FALSE(latency.contains("not_forecast")) << latency.dump();
  ASSERT_TRUE(latency["profile"].is_object()) << latency.dump();
  EXPECT_NEAR(latency["profile"]["steps"][0]["p50"].get<double>(), 0.5, 0.05);
}

// Islands whose members come and go (VMs migrating in and out, a reload
// that removes an island) keep one forecaster island per aggregate: a
// long-running daemon does not use up the forecaster's islands. A member
// that joins restarts the aggregate's model (its history summed another
// set); the history still gets a one-tick-ahead forecast for every tick.
TEST(ForecastSubsystemTest, IslandMembershipChangesReuseTheirForecastIsland) {
  WorkloadBoard board;
  std::vector<IslandSettings> islands = {island("latency", "0"), island("batch", "1")};
  auto created = oneSecondForecasts(board, islands);
  ASSERT_NE(created, nullptr);
  ForecastSubsystem& f = *created;
  auto a = workload(1, "atoll.slice/latency/a", "a");
  auto b = workload(2, "machine.slice/b.scope", "b");
  auto c = workload(3, "atoll.slice/latency/c", "c");
  const int64_t start = 1'700'000'000'000'000'000;
  auto tick = [&](int i, bool withC) {
    const int64_t now = start + int64_t{i} * 1'000'000'000;
    std::vector<telemetry::Workload> present = {a, b};
    std::vector<std::pair<telemetry::Workload, double>> rows = {{a, 0.5}, {b, 1.0}};
    if (withC) {
      present.push_back(c);
      rows.push_back({c, 2.0});
    }
    board.publish(reportOf(rows), present, {});
    for (const auto& [w, cores] : rows)
      ASSERT_TRUE(f.ring().tryPush({{w.number, forecast::Metric::Cpu}, now, cores}));
    f.tickAt(now + 1);
  };
  // host, shared (b) and latency (a, and c every other tick) are forecast;
  // batch has no workloads.
  for (int i = 0; i < 300; ++i) {
    tick(i, i % 2 == 1);
    ASSERT_EQ(f.describe()["forecaster_islands_in_use"], 3u) << "tick " << i;
  }
  nlohmann::json json = f.islandsForecast();
  ASSERT_EQ(json["islands"].size(), 4u) << json.dump();
  const auto& latency = json["islands"][2];
  EXPECT_EQ(latency["name"], "latency");
  EXPECT_EQ(latency["members"], (std::vector<uint32_t>{1, 3}));
  ASSERT_TRUE(latency["profile"].is_object()) << latency.dump();
  EXPECT_LE(latency["profile"]["accuracy"][0]["errors"].get<uint64_t>(), 1u)
      << "c joined on the last tick: a fresh model";
  EXPECT_EQ(json["islands"][3]["not_forecast"], "no workloads");

  // Members that stay put keep the model (the same set for three ticks).
  for (int i = 300; i < 303; ++i) tick(i, true);
  json = f.islandsForecast();
  EXPECT_GE(json["islands"][2]["profile"]["accuracy"][0]["errors"].get<uint64_t>(), 2u);

  // An island removed on reload releases its forecaster island; one that
  // appears takes it again.
  islands = {island("batch", "1")};
  tick(303, true);
  EXPECT_EQ(f.describe()["forecaster_islands_in_use"], 2u) << "host and shared";
  islands = {island("latency", "0")};
  tick(304, true);
  EXPECT_EQ(f.describe()["forecaster_islands_in_use"], 3u);

  nlohmann::json history = f.workloadHistory(a);
  ASSERT_EQ(history["points"].size(), 305u);
  for (size_t i = 1; i < history["points"].size(); ++i) {
    const auto& point = history["points"][i];
    ASSERT_TRUE(point["p50"].is_number()) << "point " << i << ": " << point.dump();
    EXPECT_NEAR(point["p50"].get<double>(), 0.5, 1e-9);
    EXPECT_GE(point["p95"].get<double>(), point["p50"].get<double>());
  }
  EXPECT_TRUE(history["points"][0]["p50"].is_null()) << "no forecast before the first tick";
  nlohmann::json joiner = f.workloadHistory(c);
  ASSERT_FALSE(joiner["points"].empty());
  EXPECT_TRUE(joiner["points"].back()["p50"].is_number());
}

}  // namespace
}  // namespace Atoll
