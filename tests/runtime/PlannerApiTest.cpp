// The planner subsystem behind /v1/plan, /v1/plan/history and /v1/plan/tuning
// on the real server, fed by a hand-filled board and forecaster: a quiet host
// says "no action" per island, an island whose demand outgrows its CPUs gets
// a resize that is journaled, counted, and executed only in enforce mode.
#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <unistd.h>

#include "runtime/ForecastSubsystem.h"
#include "runtime/PlannerSubsystem.h"
#include "runtime/WorkloadBoard.h"
#include "tests/runtime/ApiHarness.h"
#include "tests/runtime/PlannerWorkloads.h"

namespace Atoll {
namespace {

using test::httpRequest;
using test::rawExchange;

nlohmann::json bodyOf(const test::RawResponse& response) {
  return nlohmann::json::parse(response.body, nullptr, false);
}

using test::kSecond;
using test::kStart;
using test::workload;

double counterValue(prometheus::Registry& registry, const std::string& action,
                    const std::string& taken) {
  double total = 0;
  for (const auto& family : registry.Collect()) {
    if (family.name != "atoll_planner_decisions_total") continue;
    for (const auto& metric : family.metric) {
      std::map<std::string, std::string> labels;
      for (const auto& label : metric.label) labels[label.name] = label.value;
      if (labels["action"] == action && labels["taken"] == taken) total += metric.counter.value;
    }
  }
  return total;
}

// Four CPUs: island "latency" holds CPU 0, the shared island CPUs 1-3.
class PlannerApi : public ::testing::Test {
 protected:
  PlannerApi() : api(AccessPolicy(::getgid(), "test-admins")) {
    latency.name = "latency";
    latency.cpus = *CpuSet::parse("0");
    settings.step = std::chrono::seconds(1);
    settings.horizon = std::chrono::seconds(5);
    settings.season = std::chrono::seconds(0);
  }
  test::RawResponse get(const std::string& path) {
    return rawExchange(api.socketPath(), httpRequest("GET", path));
  }
  std::shared_ptr<ForecastSubsystem> makeForecast() {
    auto configured = [this] { return std::vector<IslandSettings>{latency}; };
    auto forecast = ForecastSubsystem::create(settings, board, configured, "atoll.slice", 4);
    if (!forecast) throw std::runtime_error(forecast.error().message());
    return *forecast;
  }
  std::shared_ptr<PlannerSubsystem> makePlanner(ForecastSubsystem& forecast,
                                                PlannerSettings plannerSettings) {
    auto configured = [this] { return std::vector<IslandSettings>{latency}; };
    auto planner = PlannerSubsystem::create([plannerSettings] { return plannerSettings; }, forecast,
                                            board, configured, api.store(), registry, 4);
    if (!planner) throw std::runtime_error(planner.error().message());
    return *planner;
  }
  // `steps` one-second steps of the workloads at these demands (cores).
  void feed(ForecastSubsystem& forecast,
            const std::vector<std::pair<telemetry::Workload, double>>& load, int steps) {
    for (int i = 0; i < steps; ++i) {
      const int64_t now = kStart + int64_t{i} * kSecond;
      telemetry::TickReport report;
      report.timestampNs = now;
      std::vector<telemetry::Workload> known;
      for (const auto& [w, cores] : load) {
        telemetry::WorkloadSnapshot row;
        row.workload = w;
        row.intervalSeconds = 1;
        row.cgroupCpuCores = cores;
        report.workloads.push_back(row);
        known.push_back(w);
        ASSERT_TRUE(forecast.ring().tryPush({{w.number, forecast::Metric::Cpu}, now, cores}));
      }
      board.publish(report, known, {});
      forecast.tickAt(now + 1);
    }
  }

  test::ApiHarness api;
  WorkloadBoard board;
  prometheus::Registry registry;
  IslandSettings latency;
  ForecastSettings settings;
};

TEST_F(PlannerApi, WithoutThePlannerTheRoutesSay503) {
  api.start();
  for (const char* path : {"/v1/plan", "/v1/plan/history", "/v1/plan/tuning"}) {
    auto response = get(path);
    EXPECT_EQ(response.status, 503) << path << ": " << response.raw;
    EXPECT_NE(bodyOf(response)["error"].get<std::string>().find("planner"), std::string::npos);
  }
}

TEST_F(PlannerApi, AQuietHostGetsNoActionRecordsWithReasons) {
  auto forecast = makeForecast();
  auto planner = makePlanner(*forecast, PlannerSettings{});
  api.context().planner = planner.get();
  api.start();

  auto before = get("/v1/plan");
  EXPECT_EQ(before.status, 503) << before.raw;
  EXPECT_NE(bodyOf(before)["error"].get<std::string>().find("no planning pass"), std::string::npos);

  // No workloads at all: nothing is forecast, and the pass says so.
  ASSERT_TRUE(planner->planAt(kStart));
  auto empty = bodyOf(get("/v1/plan"));
  EXPECT_EQ(empty["mode"], "observe");
  ASSERT_EQ(empty["decisions"].size(), 1u) << empty.dump();
  EXPECT_EQ(empty["decisions"][0]["action"], "none");
  EXPECT_FALSE(empty["decisions"][0]["taken"].get<bool>());
  EXPECT_NE(empty["decisions"][0]["reason"].get<std::string>().find("no action: no island has a "
                                                                    "published forecast yet"),
            std::string::npos)
      << empty.dump();

  // A light VM in the shared island: planned, and below its capacity.
  feed(*forecast, {{workload(7, "machine.slice/machine-qemu-web.scope", "web"), 0.5}}, 8);
  ASSERT_TRUE(planner->planAt(kStart + 9 * kSecond));
  auto response = get("/v1/plan");
  ASSERT_EQ(response.status, 200) << response.raw;
  auto plan = bodyOf(response);
  EXPECT_EQ(plan["pass"], 2);
  ASSERT_EQ(plan["islands"].size(), 2u) << plan.dump();
  EXPECT_EQ(plan["islands"][0]["name"], "shared");
  EXPECT_EQ(plan["islands"][0]["cpus"], "1-3");
  EXPECT_TRUE(plan["islands"][0]["planned"].get<bool>()) << plan.dump();
  EXPECT_EQ(plan["islands"][1]["name"], "latency");
  EXPECT_EQ(plan["islands"][1]["not_planned"], "no workloads");
  EXPECT_EQ(plan["vms"], 1);
  ASSERT_EQ(plan["decisions"].size(), 1u) << plan.dump();
  const auto& d = plan["decisions"][0];
  EXPECT_EQ(d["action"], "none");
  EXPECT_EQ(d["rule"], "no-risk");
  EXPECT_NE(d["reason"].get<std::string>().find("no action: island shared stays within"),
            std::string::npos)
      << d.dump();
  ASSERT_EQ(d["islands"].size(), 1u);
  // Still warming up after eight steps: near the half core it was fed.
  EXPECT_NEAR(d["islands"][0]["p50_peak"].get<double>(), 0.5, 0.2) << d.dump();

  // The same step again is no new pass.
  ASSERT_TRUE(planner->planAt(kStart + 9 * kSecond + 1));
  EXPECT_EQ(bodyOf(get("/v1/plan"))["pass"], 2);

  auto history = bodyOf(get("/v1/plan/history"));
  EXPECT_EQ(history["decisions"].size(), 2u) << history.dump();
  EXPECT_EQ(history["limit"], kPlannerHistory);
  auto tuning = get("/v1/plan/tuning");
  ASSERT_EQ(tuning.status, 200) << tuning.raw;
  EXPECT_DOUBLE_EQ(bodyOf(tuning)["margin"].get<double>(), planner::PlannerConfig{}.margin);
  EXPECT_TRUE(bodyOf(tuning)["changes"].empty());

  // Every record is journaled as a fact and counted.
  auto facts = api.store().list(Keyspace::Facts, std::string(kPlannerDecisionPrefix));
  ASSERT_TRUE(facts);
  EXPECT_EQ(facts->size(), 2u);
  EXPECT_DOUBLE_EQ(counterValue(registry, "none", "false"), 2);
  // Observe mode changes nothing.
  ASSERT_TRUE(planner->actAt(kStart + 10 * kSecond));
  EXPECT_TRUE(api.store().list(Keyspace::Desired, std::string(kIslandStatePrefix))->empty());
}

class PlannerResize : public PlannerApi, public ::testing::WithParamInterface<planner::Mode> {};

TEST_P(PlannerResize, AnIslandOutgrowingItsCpuIsGrownOnlyInEnforceMode) {
  auto forecast = makeForecast();
  PlannerSettings plannerSettings;
  // Both sides of a resize must be in enforce mode for it to run: the
  // shared island always is here, the receiver as the test says.
  plannerSettings.islandModes["shared"] = planner::Mode::Enforce;
  plannerSettings.islandModes["latency"] = GetParam();
  auto planner = makePlanner(*forecast, plannerSettings);
  api.context().planner = planner.get();
  api.start();

  // Three cores of demand on a one-CPU island; the shared island's three
  // CPUs carry a tenth of a core.
  feed(*forecast,
       {{workload(7, "machine.slice/machine-qemu-web.scope", "web"), 0.1},
        {workload(8, "atoll.slice/latency/machine-qemu-db.scope", "db"), 3.0}},
       8);
  ASSERT_TRUE(planner->planAt(kStart + 9 * kSecond));
  auto plan = bodyOf(get("/v1/plan"));
  nlohmann::json resize;
  for (const auto& d : plan["decisions"])
    if (d["action"] == "resize-island" && d["taken"].get<bool>()) resize = d;
  ASSERT_TRUE(resize.is_object()) << plan.dump(2);
  EXPECT_EQ(resize["from"], "shared");
  EXPECT_EQ(resize["to"], "latency");
  EXPECT_EQ(resize["mode"], planner::modeName(GetParam()));
  EXPECT_GT(resize["benefit_core_s"].get<double>(), 0);
  EXPECT_FALSE(resize["reason"].get<std::string>().empty());
  EXPECT_GE(counterValue(registry, "resize-island", "true"), 1);

  ASSERT_TRUE(planner->actAt(kStart + 10 * kSecond));
  auto desired = api.store().get(Keyspace::Desired, std::string(kIslandStatePrefix) + "latency");
  ASSERT_TRUE(desired);
  if (GetParam() == planner::Mode::Observe) {
    EXPECT_FALSE(*desired) << (*desired)->value.dump();
    EXPECT_EQ(planner->describe()["executed"], 0);
    return;
  }
  ASSERT_TRUE(*desired);
  auto cpus = CpuSet::parse((*desired)->value["cpus"].get<std::string>());
  ASSERT_TRUE(cpus);
  EXPECT_GT(cpus->size(), 1u) << (*desired)->value.dump();
  EXPECT_TRUE(cpus->indices().front() == 0) << (*desired)->value.dump();
  EXPECT_EQ(planner->describe()["executed"], 1);
  EXPECT_EQ(planner->describe()["in_flight"], 0);
}

INSTANTIATE_TEST_SUITE_P(Modes, PlannerResize,
                         ::testing::Values(planner::Mode::Observe, planner::Mode::Enforce),
                         [](const auto& info) {
                           return std::string(planner::modeName(info.param));
                         });

}  // namespace
}  // namespace Atoll
