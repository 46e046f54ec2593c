// In the test VM (full cgroup v2, four CPUs, two nodes): a change that fails
// half-way rolls back what it had applied, and bad input changes nothing.
// The failure is real: the test drops CAP_DAC_OVERRIDE and makes one
// island's cpu.weight read-only, so the kernel refuses that write after
// other islands were already changed; the managed tree must then read
// exactly as before.
#include <linux/capability.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <map>

#include "numa/CgroupV2.h"
#include "numa/CpuSet.h"
#include "numa/IslandEnforcer.h"
#include "tests/numa/islands/IslandOf.h"
#include "util/Fs.h"

namespace Atoll::numa {
namespace {

using testing::island;

constexpr const char* kMount = "/sys/fs/cgroup";
constexpr const char* kManagedRoot = "atoll-rollback.slice";
constexpr int kCapDacOverride = 1;  // CAP_DAC_OVERRIDE

// Sets or clears one capability in the effective set (the permitted set
// keeps it, so it can be raised again).
bool setEffective(int capability, bool on) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (::syscall(SYS_capget, &header, data) != 0) return false;
  const unsigned bit = 1u << (capability % 32);
  if (on)
    data[capability / 32].effective |= bit;
  else
    data[capability / 32].effective &= ~bit;
  return ::syscall(SYS_capset, &header, data) == 0;
}

// Every setting Atoll writes, and the cgroups that exist, in the managed
// tree, plus the mount's own controller setting and child list.
std::map<std::string, std::string> snapshot() {
  std::map<std::string, std::string> out;
  const std::vector<std::string> files = {"cgroup.subtree_control",
                                          "cgroup.procs",
                                          "cpuset.cpus",
                                          "cpuset.mems",
                                          "cpuset.cpus.partition",
                                          "cpuset.cpus.effective",
                                          "cpu.weight",
                                          "cpu.max",
                                          "memory.min",
                                          "memory.low",
                                          "memory.high",
                                          "memory.max",
                                          "io.weight"};
  auto mount = Dir::open(kMount);
  if (!mount) return out;
  out["/"] = mount->readFile("cgroup.subtree_control").value_or("?");
  auto top = mount->list();
  for (const auto& name : top.value_or(std::vector<std::string>{})) out["/" + name] = "entry";
  std::vector<std::string> pending = {std::string(kMount) + "/" + kManagedRoot};
  while (!pending.empty()) {
    const std::string path = pending.back();
    pending.pop_back();
    auto dir = Dir::open(path);
    if (!dir) continue;
    for (const auto& file : files)
      if (dir->exists(file)) out[path + "/" + file] = dir->readFile(file).value_or("?");
    for (const auto& name : dir->list().value_or(std::vector<std::string>{}))
      if (dir->exists(name + "/cgroup.procs")) pending.push_back(path + "/" + name);
  }
  return out;
}

class IslandRollbackVmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto root = CgroupV2::open(kMount);
    if (!root) GTEST_SKIP() << "no cgroup v2 at " << kMount;
    auto enabled = root->enabledControllers();
    if (!enabled || std::find(enabled->begin(), enabled->end(), "cpuset") == enabled->end())
      GTEST_SKIP() << "cpuset is not enabled in " << kMount << "/cgroup.subtree_control";
    auto host = Topology::fromHost();
    ASSERT_TRUE(host) << host.error().message();
    topology_ = std::move(*host);
    if (topology_.cpus().size() < 4 || topology_.nodes().size() < 2)
      GTEST_SKIP() << "needs four CPUs and two NUMA nodes (" << topology_.summary() << ")";
    auto enforcer = IslandEnforcer::open(topology_, kMount, kManagedRoot);
    ASSERT_TRUE(enforcer) << enforcer.error().message();
    enforcer_.emplace(std::move(*enforcer));
    original_ = {island("alpha", {1}, {0}), island("beta", {2}, {1})};
    original_[1].limits.cpuWeight = 100;
    auto applied = enforcer_->apply(original_);
    ASSERT_TRUE(applied) << applied.error().message();
  }

  void TearDown() override {
    if (!enforcer_) return;
    setEffective(kCapDacOverride, true);
    if (!weightFile_.empty()) ::chmod(weightFile_.c_str(), 0644);
    for (const char* name : {"gamma", "alpha", "beta"}) (void)enforcer_->remove(name);
    if (auto mount = Dir::open(kMount)) (void)mount->removeChild(kManagedRoot);
  }

  Topology topology_;
  std::optional<IslandEnforcer> enforcer_;
  std::vector<Island> original_;
  std::string weightFile_;
};

TEST_F(IslandRollbackVmTest, FailureHalfWayLeavesTheHostExactlyAsBefore) {
  const auto before = snapshot();
  ASSERT_FALSE(before.empty());
  weightFile_ = enforcer_->managedPath() + "/beta/cpu.weight";
  ASSERT_EQ(::chmod(weightFile_.c_str(), 0444), 0) << weightFile_;
  ASSERT_TRUE(setEffective(kCapDacOverride, false));

  // alpha grows and changes weight, gamma is created, then beta's write fails.
  std::vector<Island> desired = {island("alpha", {1, 3}, {0}), island("gamma", {3}, {1}),
                                 island("beta", {2}, {1})};
  desired[0].limits.cpuWeight = 200;
  desired[1].limits.cpuWeight = 50;
  desired[2].limits.cpuWeight = 300;
  auto applied = enforcer_->apply(desired);
  ASSERT_TRUE(setEffective(kCapDacOverride, true));
  ASSERT_FALSE(applied) << "the read-only cpu.weight was written";
  const std::string message = applied.error().message();
  EXPECT_NE(message.find("beta/cpu.weight"), std::string::npos) << message;
  EXPECT_NE(message.find("'300'"), std::string::npos) << message;
  EXPECT_NE(message.find("rolled back"), std::string::npos) << message;
  EXPECT_EQ(snapshot(), before);
  auto islands = enforcer_->islands();
  ASSERT_TRUE(islands) << islands.error().message();
  ASSERT_EQ(islands->size(), 2u);
  EXPECT_EQ((*islands)[0].cpus, original_[0].cpus);
  EXPECT_EQ((*islands)[1].name, "beta");
}

// Exclusive islands swapping CPUs are members while the CPUs move; a
// failure after that puts the CPUs back and makes them valid partitions
// again.
TEST_F(IslandRollbackVmTest, FailedSwapOfExclusiveIslandsLeavesTheirPartitionsAsBefore) {
  auto exclusive = original_;
  for (auto& each : exclusive) each.exclusivity = Exclusivity::Root;
  auto made = enforcer_->apply(exclusive);
  ASSERT_TRUE(made) << made.error().message();
  const auto before = snapshot();
  weightFile_ = enforcer_->managedPath() + "/beta/cpu.weight";
  ASSERT_EQ(::chmod(weightFile_.c_str(), 0444), 0) << weightFile_;
  ASSERT_TRUE(setEffective(kCapDacOverride, false));

  auto swapped = exclusive;
  std::swap(swapped[0].cpus, swapped[1].cpus);
  swapped[1].limits.cpuWeight = 300;
  auto applied = enforcer_->apply(swapped);
  ASSERT_TRUE(setEffective(kCapDacOverride, true));
  ASSERT_FALSE(applied) << "the read-only cpu.weight was written";
  EXPECT_NE(applied.error().message().find("beta/cpu.weight"), std::string::npos)
      << applied.error().message();
  EXPECT_EQ(snapshot(), before);
  auto status = enforcer_->status();
  ASSERT_TRUE(status) << status.error().message();
  ASSERT_EQ(status->size(), 2u);
  for (const auto& each : *status) {
    EXPECT_EQ(each.partitionProblem, "") << each.island.name;
    EXPECT_EQ(each.island.exclusivity, Exclusivity::Root) << each.island.name;
  }
}

// A partition the kernel had already refused reads "isolated invalid
// (reason)"; a rollback puts back "isolated", the only form the file takes,
// and the kernel refuses the partition again for the same reason.
TEST_F(IslandRollbackVmTest, FailureAfterLeavingAnInvalidPartitionRestoresIt) {
  auto exclusive = original_;
  exclusive[0].exclusivity = Exclusivity::Isolated;
  auto made = enforcer_->apply(exclusive);
  ASSERT_TRUE(made) << made.error().message();
  // beta taking alpha's CPU by hand makes the kernel invalidate alpha.
  auto beta = CgroupV2::open(enforcer_->managedPath() + "/beta");
  ASSERT_TRUE(beta) << beta.error().message();
  ASSERT_TRUE(beta->write("cpuset.cpus", "1-2"));
  auto alpha = CgroupV2::open(enforcer_->managedPath() + "/alpha");
  ASSERT_TRUE(alpha) << alpha.error().message();
  const std::string invalid = alpha->read("cpuset.cpus.partition").value_or("?");
  ASSERT_EQ(invalid.rfind("isolated invalid", 0), 0u) << invalid;
  const auto before = snapshot();
  weightFile_ = enforcer_->managedPath() + "/beta/cpu.weight";
  ASSERT_EQ(::chmod(weightFile_.c_str(), 0444), 0) << weightFile_;
  ASSERT_TRUE(setEffective(kCapDacOverride, false));

  // alpha becomes a member and beta gives its CPU back before beta's write fails.
  auto shared = original_;
  shared[1].limits.cpuWeight = 300;
  auto applied = enforcer_->apply(shared);
  ASSERT_TRUE(setEffective(kCapDacOverride, true));
  ASSERT_FALSE(applied) << "the read-only cpu.weight was written";
  EXPECT_NE(applied.error().message().find("beta/cpu.weight"), std::string::npos)
      << applied.error().message();
  EXPECT_EQ(alpha->read("cpuset.cpus.partition").value_or("?"), invalid);
  EXPECT_EQ(snapshot(), before);
}

TEST_F(IslandRollbackVmTest, BadInputIsAnErrorNamingTheValueAndChangesNothing) {
  const auto before = snapshot();
  auto expectRefused = [&](std::vector<Island> desired, const std::string& named) {
    auto applied = enforcer_->apply(desired);
    ASSERT_FALSE(applied) << named;
    EXPECT_NE(applied.error().message().find(named), std::string::npos)
        << applied.error().message();
    EXPECT_EQ(snapshot(), before) << named;
  };
  // Overlapping exclusive islands.
  auto exclusive = original_;
  exclusive[0].exclusivity = Exclusivity::Root;
  exclusive.push_back(island("gamma", {1}, {0}));
  expectRefused(exclusive, "'1'");
  // A CPU and a node that do not exist.
  auto noCpu = original_;
  noCpu.push_back(island("gamma", {9}, {0}));
  expectRefused(noCpu, "'9'");
  auto noNode = original_;
  noNode.push_back(island("gamma", {3}, {4}));
  expectRefused(noNode, "'4'");
  // Leaving the shared island empty.
  auto everything = original_;
  everything.push_back(island("gamma", {0, 3}, {0}));
  expectRefused(everything, "shared island empty");
  // Pinning into an island that does not exist, or a process that does not.
  auto missingIsland = enforcer_->pin("nosuch", ::getpid());
  ASSERT_FALSE(missingIsland);
  EXPECT_NE(missingIsland.error().message().find("'nosuch'"), std::string::npos);
  auto missingProcess = enforcer_->pin("alpha", 999999);
  ASSERT_FALSE(missingProcess);
  EXPECT_NE(missingProcess.error().message().find("'999999'"), std::string::npos);
  EXPECT_EQ(snapshot(), before);
}

// `atoll island create --select GLOB` moves the processes of the matching
// cgroups into the new island; a selector matching nothing is refused and
// no island is created.
TEST_F(IslandRollbackVmTest, CreateWithSelectorAdoptsMembersAndRefusesNoMatch) {
  const char* cli = std::getenv("ATOLL_CLI");
  if (cli == nullptr) GTEST_SKIP() << "ATOLL_CLI is not set (the test VM sets it)";
  const std::string family = std::string(kMount) + "/atoll-select-test";
  ASSERT_EQ(::mkdir(family.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((family + "/app").c_str(), 0755), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::pause();
    ::_exit(0);
  }
  auto app = CgroupV2::open(family + "/app");
  ASSERT_TRUE(app) << app.error().message();
  ASSERT_TRUE(app->moveProcess(child));
  const std::string base = std::string(cli) + " island --managed-root " + kManagedRoot + " ";

  const auto before = snapshot();
  const int refused =
      std::system((base + "create nomatch --cpus 3 --select 'atoll-select-nothing/*'").c_str());
  EXPECT_EQ(WEXITSTATUS(refused), 2);
  EXPECT_EQ(snapshot(), before);

  const int created =
      std::system((base + "create gamma --cpus 3 --select 'atoll-select-test/*'").c_str());
  EXPECT_EQ(WEXITSTATUS(created), 0);
  auto membership = readFile("/proc/" + std::to_string(child) + "/cgroup");
  ASSERT_TRUE(membership);
  EXPECT_NE(membership->find(std::string("0::/") + kManagedRoot + "/gamma"), std::string::npos)
      << *membership;

  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  (void)enforcer_->remove("gamma");
  ::rmdir((family + "/app").c_str());
  ::rmdir(family.c_str());
}

}  // namespace
}  // namespace Atoll::numa
