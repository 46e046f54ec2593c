// The main job end to end on the real kernel: atolld on a temporary state
// directory and socket with a short tick, a cgroup holding a busy process
// under a telemetry selector of the cgroup2 mount; the workload shows up in
// /v1/workloads with its CPU, then in /v1/forecast with a short-term
// forecast and a profile. Needs root (cgroupfs writes).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "bpf/collector/Collector.h"
#include "tests/runtime/TestSupport.h"

namespace Atoll {
namespace {

using namespace std::chrono_literals;

nlohmann::json getJson(const std::string& socket, const std::string& path) {
  auto response = test::rawExchange(socket, test::httpRequest("GET", path));
  if (response.status != 200) return nullptr;
  return nlohmann::json::parse(response.body, nullptr, false);
}

// A cgroup this test creates under the cgroup2 mount, with one busy child
// process in it; both are removed at the end.
class BusyCgroup {
 public:
  BusyCgroup(const std::string& mount, const std::string& parent)
      : parentPath_(mount + "/" + parent), leafPath_(parentPath_ + "/busy") {
    ok_ = ::mkdir(parentPath_.c_str(), 0755) == 0 && ::mkdir(leafPath_.c_str(), 0755) == 0;
    if (!ok_) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::alarm(60);  // never outlive a crashed test
      // Spin on the CPU; the barrier keeps the loop from being optimised away.
      for (;;) asm volatile("" ::: "memory");
    }
    std::ofstream procs(leafPath_ + "/cgroup.procs");
    procs << pid_;
    procs.flush();
    ok_ = procs.good();
  }
  ~BusyCgroup() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    for (int i = 0; i < 100 && ::rmdir(leafPath_.c_str()) != 0 && errno == EBUSY; ++i)
      std::this_thread::sleep_for(10ms);
    ::rmdir(parentPath_.c_str());
  }
  bool ok() const { return ok_; }

 private:
  std::string parentPath_;
  std::string leafPath_;
  pid_t pid_ = -1;
  bool ok_ = false;
};

TEST(MainJobKernel, ABusyCgroupUnderASelectorIsSeenAndForecast) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to create cgroups and move a process";
  const std::string mount = telemetry::defaultCgroup2Mount();
  if (::access((mount + "/cgroup.procs").c_str(), W_OK) != 0)
    GTEST_SKIP() << "no writable cgroup2 mount at " << mount;
  const std::string parent = "atoll-mainjob-" + std::to_string(::getpid());
  BusyCgroup busy(mount, parent);
  ASSERT_TRUE(busy.ok()) << "could not create " << mount << "/" << parent << "/busy";

  test::TempDir dir;
  test::writeTextFile(dir.file("atolld.toml"), R"([daemon]
tick_ms = 250
[subsystems.housekeeping]
budget_ms = 20
[subsystems.self-metrics]
budget_ms = 10
[subsystems.telemetry]
budget_ms = 100
[subsystems.forecast]
budget_ms = 40
[subsystems.islands]
budget_ms = 40
[telemetry]
selectors = [")" + parent + R"(/*"]
libvirt_uri = ""
discover_every_ticks = 1
[forecast]
step_seconds = 1
horizon_seconds = 10
season_seconds = 0
)");
  std::string failure;
  auto daemon = test::DaemonProcess::start(dir.path(), test::daemonArgsIn(dir, /*withConfig=*/true),
                                           &failure, 30s);
  ASSERT_TRUE(daemon) << failure;
  const std::string socket = dir.file("atolld.sock");
  const std::string path = parent + "/busy";

  nlohmann::json seen;
  for (auto until = std::chrono::steady_clock::now() + 10s;
       std::chrono::steady_clock::now() < until && seen.is_null();
       std::this_thread::sleep_for(200ms)) {
    auto workloads = getJson(socket, "/v1/workloads");
    if (!workloads.is_object()) continue;
    for (const auto& row : workloads["workloads"]) {
      if (row["cgroup"] != path) continue;
      const auto& cpu = row["cpu_cores"].is_number() ? row["cpu_cores"] : row["cpu_stat_cores"];
      if (cpu.is_number() && cpu.get<double>() > 0.3) seen = row;
    }
  }
  ASSERT_FALSE(seen.is_null()) << "the busy cgroup never showed in /v1/workloads\n"
                               << daemon->log();

  nlohmann::json forecast;
  for (auto until = std::chrono::steady_clock::now() + 10s;
       std::chrono::steady_clock::now() < until; std::this_thread::sleep_for(250ms)) {
    forecast = getJson(socket, "/v1/forecast/" + path);
    if (forecast.is_object() && forecast["short_term"].is_object() &&
        forecast["profile"].is_object())
      break;
  }
  ASSERT_TRUE(forecast.is_object()) << daemon->log();
  ASSERT_TRUE(forecast["short_term"].is_object()) << forecast.dump();
  // A spinning thread: clearly above idle, though how much of a core it gets
  // depends on what else the host runs.
  EXPECT_GT(forecast["short_term"]["p50"].get<double>(), 0.05) << forecast.dump();
  ASSERT_TRUE(forecast["profile"].is_object()) << forecast.dump();
  EXPECT_EQ(forecast["profile"]["steps"].size(), 10u);
  EXPECT_GT(forecast["profile"]["steps"][0]["p50"].get<double>(), 0.05) << forecast.dump();

  auto status = getJson(socket, "/v1/status");
  ASSERT_TRUE(status.is_object());
  bool telemetryReported = false;
  for (const auto& s : status["subsystems"])
    if (s["name"] == "telemetry") telemetryReported = s["details"]["workloads"].get<int>() >= 1;
  EXPECT_TRUE(telemetryReported) << status.dump(2);

  // The planner runs in observe mode on the shared island that holds the busy
  // cgroup (no islands are configured), and explains every decision.
  nlohmann::json plan;
  auto sharedPlanned = [&] {
    if (!plan.is_object()) return false;
    for (const auto& island : plan["islands"])
      if (island["name"] == "shared" && island["planned"] == true) return true;
    return false;
  };
  for (auto until = std::chrono::steady_clock::now() + 10s;
       std::chrono::steady_clock::now() < until && !sharedPlanned();
       std::this_thread::sleep_for(250ms))
    plan = getJson(socket, "/v1/plan");
  ASSERT_TRUE(sharedPlanned()) << plan.dump(2) << "\n" << daemon->log();
  EXPECT_EQ(plan["mode"], "observe");
  EXPECT_GE(plan["vms"].get<int>(), 1) << plan.dump(2);
  ASSERT_FALSE(plan["decisions"].empty()) << plan.dump(2);
  for (const auto& decision : plan["decisions"]) {
    EXPECT_FALSE(decision["reason"].get<std::string>().empty()) << decision.dump();
    EXPECT_TRUE(decision["rule"].is_string()) << decision.dump();
    EXPECT_FALSE(decision["execute"].get<bool>()) << decision.dump();  // observe changes nothing
  }
  auto history = getJson(socket, "/v1/plan/history");
  ASSERT_TRUE(history.is_object());
  EXPECT_GE(history["decisions"].size(), plan["decisions"].size());

  daemon->signal(SIGTERM);
  auto exit = daemon->waitExit(10s);
  ASSERT_TRUE(exit);
  EXPECT_TRUE(WIFEXITED(*exit) && WEXITSTATUS(*exit) == 0) << daemon->log();
}

}  // namespace
}  // namespace Atoll
