// A resize the planner decided, interrupted after the islands subsystem began
// applying it (the journaled action is in flight, cgroupfs possibly half
// written): the next start settles it. Where the host holds islands (cgroup
// v2 with cpuset, as in the test VM) the action is completed and cgroupfs
// shows the resized island; where it cannot, nothing can have been written
// and the action is rolled back. Either way the journal has nothing left in
// flight and the planner's desired resize is still there for the islands
// subsystem's next reconcile. Registered as a unit test on the build host;
// in the test VM the islands subsystem's own first reconcile races the
// injected action, so the completed branch is not registered there yet.
#include <gtest/gtest.h>

#include <filesystem>
#include <iostream>

#include "numa/IslandEnforcer.h"
#include "numa/Topology.h"
#include "runtime/Daemon.h"
#include "runtime/IslandSubsystem.h"
#include "tests/runtime/TestSupport.h"
#include "util/Fs.h"

namespace Atoll {
namespace {

using namespace std::chrono_literals;

// The cgroup2 mount: /sys/fs/cgroup on a unified host (the test VM),
// /sys/fs/cgroup/unified on a hybrid one (the build host).
std::string cgroup2Mount() {
  return std::filesystem::exists("/sys/fs/cgroup/cgroup.controllers") ? "/sys/fs/cgroup"
                                                                      : "/sys/fs/cgroup/unified";
}

DaemonConfig configIn(const test::TempDir& dir) {
  DaemonConfig config = defaultConfig();
  config.socketPath = dir.file("api.sock");
  config.stateDirectory = dir.file("state");
  config.metricsEnabled = false;
  config.tick = 50ms;
  config.telemetry.enabled = false;
  config.telemetry.cgroupMount = cgroup2Mount();
  config.planner.config.mode = planner::Mode::Enforce;
  IslandSettings latency;
  latency.name = "latency";
  latency.cpus = *CpuSet::parse("0");
  latency.mems = *CpuSet::parse("0");
  config.islands.push_back(latency);
  return config;
}

std::unique_ptr<Daemon> startDaemon(const test::TempDir& dir) {
  DaemonOptions options;
  options.handleSignals = false;
  auto daemon = Daemon::start(configIn(dir), std::move(options));
  if (!daemon) throw std::runtime_error(daemon.error().message());
  return std::move(*daemon);
}

class PlannerResizeRecovery : public ::testing::Test {
 protected:
  void TearDown() override {
    if (!supported_) return;
    // Leave the guest's cgroupfs as it was.
    auto topology = numa::Topology::fromHost();
    if (!topology) return;
    auto enforcer = numa::IslandEnforcer::open(*topology, cgroup2Mount());
    if (!enforcer) return;
    (void)enforcer->remove("latency");
    if (auto mount = Dir::open(cgroup2Mount())) (void)mount->removeChild(numa::kDefaultManagedRoot);
  }
  bool supported_ = false;
};

TEST_F(PlannerResizeRecovery, AResizeInterruptedAfterBeginIsSettledAtTheNextStart) {
  const std::string problem = islandSupportProblem(cgroup2Mount());
  supported_ = problem.empty();
  if (supported_) {
    auto topology = numa::Topology::fromHost();
    ASSERT_TRUE(topology) << topology.error().message();
    if (topology->cpus().size() < 2) GTEST_SKIP() << "needs two CPUs: " << topology->summary();
  }
  test::TempDir dir;
  const std::string key = std::string(kIslandStatePrefix) + "latency";
  const nlohmann::json grown = {{"cpus", "0-1"}, {"mems", "0"}};
  {
    auto daemon = startDaemon(dir);
    // What the planner's act phase writes, then what the islands
    // subsystem's reconcile journals before touching cgroupfs; the crash
    // comes before the apply finishes.
    ASSERT_TRUE(daemon->store().put(Keyspace::Desired, key, grown, {0, 0, "planner"}));
    nlohmann::json params = {
        {"islands",
         nlohmann::json::array(
             {{{"name", "latency"}, {"cpus", "0-1"}, {"mems", "0"}, {"exclusivity", "member"}}})}};
    ASSERT_TRUE(daemon->actions().begin("islands", "apply", params));
    ASSERT_EQ(daemon->actions().pending().size(), 1u);
  }  // destroyed without finishing: the journal still says "in flight"

  auto daemon = startDaemon(dir);
  auto status = daemon->status();
  EXPECT_TRUE(daemon->actions().pending().empty()) << status["actions"].dump();
  EXPECT_EQ(status["actions"]["finished"], 1) << status["actions"].dump();
  EXPECT_TRUE(status["actions"]["unrecovered_at_start"].empty()) << status["actions"].dump();
  auto desired = daemon->store().get(Keyspace::Desired, key);
  ASSERT_TRUE(desired);
  ASSERT_TRUE(*desired);
  EXPECT_EQ((*desired)->value, grown);

  if (!supported_) {
    // Rolled back: islands could never be written on this host.
    std::cout << "rolled back: " << problem << "\n";
    return;
  }
  // Completed: the interrupted apply was finished at start, before any tick.
  auto cpus = test::readTextFile(cgroup2Mount() + "/" + std::string(numa::kDefaultManagedRoot) +
                                 "/latency/cpuset.cpus");
  EXPECT_EQ(std::string(trim(cpus)), "0-1");
}

}  // namespace
}  // namespace Atoll
