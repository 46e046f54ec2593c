// The main job's API routes on the real server: /v1/workloads, /v1/forecast,
// /v1/history, /v1/islands/forecast and /v1/islands, fed by a hand-filled
// board and forecaster, and the islands subsystem on a tree without cgroup v2.
#include <gtest/gtest.h>
#include <unistd.h>

#include "runtime/ForecastSubsystem.h"
#include "runtime/IslandSubsystem.h"
#include "runtime/WorkloadBoard.h"
#include "tests/runtime/ApiHarness.h"

namespace Atoll {
namespace {

using test::httpRequest;
using test::rawExchange;

nlohmann::json bodyOf(const test::RawResponse& response) {
  return nlohmann::json::parse(response.body, nullptr, false);
}

class MainJobApi : public ::testing::Test {
 protected:
  MainJobApi() : api(AccessPolicy(::getgid(), "test-admins")) {}
  test::RawResponse get(const std::string& path) {
    return rawExchange(api.socketPath(), httpRequest("GET", path));
  }
  test::ApiHarness api;
};

TEST_F(MainJobApi, WithoutTheSubsystemsTheRoutesSay503) {
  api.start();
  for (const char* path : {"/v1/workloads", "/v1/forecast/web", "/v1/islands/forecast",
                           "/v1/islands", "/v1/history/web"}) {
    auto response = get(path);
    EXPECT_EQ(response.status, 503) << path << ": " << response.raw;
    EXPECT_TRUE(bodyOf(response)["error"].is_string()) << path;
  }
}

TEST_F(MainJobApi, ServesWorkloadsForecastsAndIslands) {
  WorkloadBoard board;
  ForecastSettings settings;
  settings.step = std::chrono::seconds(1);
  settings.horizon = std::chrono::seconds(5);
  settings.season = std::chrono::seconds(0);
  IslandSettings latency;
  latency.name = "latency";
  latency.cpus = *CpuSet::parse("0");
  auto configured = [latency] { return std::vector<IslandSettings>{latency}; };
  auto forecast = ForecastSubsystem::create(settings, board, configured, "atoll.slice", 2);
  ASSERT_TRUE(forecast) << forecast.error().message();
  // A directory that is no cgroup2 mount: islands are desired, not enforced.
  IslandSubsystem islands(api.store(), api.actions(), configured, api.dir().path());
  api.context().workloads = &board;
  api.context().forecast = forecast->get();
  api.context().islands = &islands;
  api.start();

  auto before = get("/v1/workloads");
  EXPECT_EQ(before.status, 503) << before.raw;
  EXPECT_NE(bodyOf(before)["error"].get<std::string>().find("first tick"), std::string::npos);

  telemetry::Workload web;
  web.number = 7;
  web.cgroup = {4242, "machine.slice/machine-qemu-web.scope", "web", "0f8fad5b-d9cb"};
  const int64_t start = 1'700'000'000'000'000'000;
  for (int i = 0; i < 6; ++i) {
    const int64_t now = start + int64_t{i} * 1'000'000'000;
    telemetry::TickReport report;
    report.timestampNs = now;
    telemetry::WorkloadSnapshot row;
    row.workload = web;
    row.intervalSeconds = 1;
    row.cgroupCpuCores = 0.75;
    row.memoryBytes = 1 << 20;
    report.workloads.push_back(row);
    board.publish(report, {web}, {"block I/O bytes and latency: disabled"});
    ASSERT_TRUE((*forecast)->ring().tryPush({{7, forecast::Metric::Cpu}, now, 0.75}));
    (*forecast)->tickAt(now + 1);
  }

  auto workloads = get("/v1/workloads");
  ASSERT_EQ(workloads.status, 200) << workloads.raw;
  auto w = bodyOf(workloads);
  ASSERT_EQ(w["workloads"].size(), 1u);
  EXPECT_EQ(w["workloads"][0]["name"], "web");
  EXPECT_EQ(w["workloads"][0]["cpu_stat_cores"], 0.75);
  EXPECT_TRUE(w["workloads"][0]["cpu_cores"].is_null());  // missing, never 0
  EXPECT_EQ(w["degraded"][0], "block I/O bytes and latency: disabled");

  for (const std::string who : {"web", "7", "0f8fad5b-d9cb"}) {
    auto response = get("/v1/forecast/" + who);
    ASSERT_EQ(response.status, 200) << who << ": " << response.raw;
    auto f = bodyOf(response);
    EXPECT_EQ(f["workload"], 7);
    EXPECT_EQ(f["metric"], "cpu");
    ASSERT_TRUE(f["short_term"].is_object()) << f.dump();
    EXPECT_NEAR(f["short_term"]["p50"].get<double>(), 0.75, 1e-6);
  }
  auto byPath = get("/v1/forecast/machine.slice/machine-qemu-web.scope?metric=memory");
  ASSERT_EQ(byPath.status, 200) << byPath.raw;
  EXPECT_EQ(bodyOf(byPath)["metric"], "memory");
  EXPECT_EQ(get("/v1/forecast/nobody").status, 404);
  auto badMetric = get("/v1/forecast/web?metric=disk");
  EXPECT_EQ(badMetric.status, 400);
  EXPECT_NE(bodyOf(badMetric)["error"].get<std::string>().find("'disk'"), std::string::npos);

  auto history = get("/v1/history/web");
  ASSERT_EQ(history.status, 200) << history.raw;
  EXPECT_EQ(bodyOf(history)["points"].size(), 6u);

  auto aggregates = get("/v1/islands/forecast");
  ASSERT_EQ(aggregates.status, 200) << aggregates.raw;
  auto a = bodyOf(aggregates);
  ASSERT_EQ(a["islands"].size(), 3u);
  EXPECT_EQ(a["islands"][0]["name"], "host");
  EXPECT_EQ(a["islands"][2]["name"], "latency");
  EXPECT_EQ(a["islands"][2]["not_forecast"], "no workloads");

  ASSERT_TRUE(islands.runPhase(Phase::Act, TickContext{}));
  auto islandView = get("/v1/islands");
  ASSERT_EQ(islandView.status, 200) << islandView.raw;
  auto i = bodyOf(islandView);
  EXPECT_FALSE(i["enforced"].get<bool>());
  EXPECT_NE(i["degraded"].get<std::string>().find("not a cgroup v2 mount"), std::string::npos)
      << i.dump();
  ASSERT_EQ(i["desired"].size(), 1u);
  EXPECT_EQ(i["desired"][0]["name"], "latency");
  EXPECT_EQ(i["desired"][0]["source"], "config");
  EXPECT_TRUE(i["current"].empty());
  // Nothing was begun on a host that cannot hold islands.
  EXPECT_TRUE(api.actions().pending().empty());
  EXPECT_EQ(api.actions().finishedCount(), 0u);
}

// Workloads found through a cgroup selector are named by their cgroup path;
// the path's last component finds one too, unless two paths share it.
TEST_F(MainJobApi, FindsSelectorWorkloadsByTheLastPathComponent) {
  WorkloadBoard board;
  ForecastSettings settings;
  settings.step = std::chrono::seconds(1);
  settings.horizon = std::chrono::seconds(5);
  settings.season = std::chrono::seconds(0);
  auto none = [] { return std::vector<IslandSettings>{}; };
  auto forecast = ForecastSubsystem::create(settings, board, none, "atoll.slice", 2);
  ASSERT_TRUE(forecast) << forecast.error().message();
  api.context().workloads = &board;
  api.context().forecast = forecast->get();
  api.start();

  auto selected = [](uint32_t number, const std::string& path) {
    telemetry::Workload w;
    w.number = number;
    w.cgroup.cgroupId = 1000 + number;
    w.cgroup.path = path;
    w.cgroup.name = path;
    return w;
  };
  const telemetry::Workload demo = selected(1, "machine.slice/demo-vm");
  const telemetry::Workload batchA = selected(2, "machine.slice/batch");
  const telemetry::Workload batchB = selected(3, "tenants.slice/batch");
  board.publish(telemetry::TickReport{}, {demo, batchA, batchB}, {});

  auto byComponent = get("/v1/forecast/demo-vm");
  ASSERT_EQ(byComponent.status, 200) << byComponent.raw;
  EXPECT_EQ(bodyOf(byComponent)["workload"], 1);
  EXPECT_EQ(bodyOf(byComponent)["cgroup"], "machine.slice/demo-vm");
  EXPECT_EQ(get("/v1/history/demo-vm").status, 200);

  auto ambiguous = get("/v1/forecast/batch");
  EXPECT_EQ(ambiguous.status, 404) << ambiguous.raw;
  const std::string why = bodyOf(ambiguous)["error"].get<std::string>();
  EXPECT_NE(why.find("ambiguous"), std::string::npos) << why;
  EXPECT_NE(why.find("machine.slice/batch (workload 2)"), std::string::npos) << why;
  EXPECT_NE(why.find("tenants.slice/batch (workload 3)"), std::string::npos) << why;

  auto fullPath = get("/v1/forecast/tenants.slice/batch");
  ASSERT_EQ(fullPath.status, 200) << fullPath.raw;
  EXPECT_EQ(bodyOf(fullPath)["workload"], 3);
  // A component is matched whole: neither a suffix of it nor a partial path.
  EXPECT_EQ(get("/v1/forecast/vm").status, 404);
  EXPECT_EQ(get("/v1/forecast/slice/demo-vm").status, 404);
}

TEST(WorkloadBoardFind, ExactNamesWinOverPathComponentsAndSharedNamesListTheCandidates) {
  WorkloadBoard board;
  telemetry::Workload libvirtVm;
  libvirtVm.number = 4;
  libvirtVm.cgroup = {11, "machine.slice/machine-qemu-1-web.scope", "web", "uuid-web"};
  telemetry::Workload selectedWeb;
  selectedWeb.number = 5;
  selectedWeb.cgroup = {12, "other.slice/web", "other.slice/web", ""};
  telemetry::Workload twinA;
  twinA.number = 6;
  twinA.cgroup = {13, "a.slice/machine-qemu-2-db.scope", "db", ""};
  telemetry::Workload twinB;
  twinB.number = 7;
  twinB.cgroup = {14, "b.slice/machine-qemu-3-db.scope", "db", ""};
  board.publish(telemetry::TickReport{}, {libvirtVm, selectedWeb, twinA, twinB}, {});

  auto web = board.find("web");
  ASSERT_TRUE(web) << web.error().message();
  EXPECT_EQ(web->number, 4u);  // the VM's own name, before any path component
  auto db = board.find("db");
  ASSERT_FALSE(db);
  EXPECT_NE(db.error().message().find("a.slice/machine-qemu-2-db.scope (workload 6)"),
            std::string::npos)
      << db.error().message();
  EXPECT_NE(db.error().message().find("b.slice/machine-qemu-3-db.scope (workload 7)"),
            std::string::npos)
      << db.error().message();
  auto missing = board.find("nothing");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message().find("no workload 'nothing'"), std::string::npos);
  EXPECT_FALSE(board.find(""));
}

}  // namespace
}  // namespace Atoll
