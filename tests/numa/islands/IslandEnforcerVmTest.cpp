// In the test VM (two NUMA nodes, full cgroup v2): islands enforced through
// cgroupfs. Two islands, one per node, with pinned processes: their CPUs
// (Cpus_allowed_list) and pages (numa_maps) stay on the island's node; an
// island's memory node changes and the pages follow; a resize and members
// follow; an exclusive island takes its CPUs out of the shared island.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <iostream>
#include <optional>

#include "numa/CpuSet.h"
#include "numa/IslandAllocator.h"
#include "numa/IslandEnforcer.h"
#include "numa/NumaMaps.h"
#include "tests/numa/islands/TouchingChild.h"
#include "util/Fs.h"

namespace Atoll::numa {
namespace {

using test::kTouchedBytes;
using test::pagesOfMapping;
using test::TouchingChild;

constexpr std::string_view kStatusCpusAllowed = "Cpus_allowed_list:";

std::string statusField(pid_t pid, std::string_view key) {
  auto status = readFile("/proc/" + std::to_string(pid) + "/status");
  if (!status) return {};
  std::string_view text = *status;
  auto at = text.find(key);
  if (at == std::string_view::npos) return {};
  text.remove_prefix(at + key.size());
  return std::string(trim(text.substr(0, text.find('\n'))));
}

class IslandEnforcerVmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to create cgroups";
    auto root = CgroupV2::open(std::string(kDefaultCgroupMount));
    if (!root || !root->has(cgroupfile::kControllers))
      GTEST_SKIP() << kDefaultCgroupMount << " is not a cgroup v2 mount; this test runs in the VM";
    auto enabled = root->enabledControllers();
    if (!enabled || std::find(enabled->begin(), enabled->end(), "cpuset") == enabled->end())
      GTEST_SKIP() << "cpuset is not enabled in " << kDefaultCgroupMount
                   << "/cgroup.subtree_control";
    auto topology = Topology::fromHost();
    ASSERT_TRUE(topology) << topology.error().message();
    topology_ = std::move(*topology);
    if (topology_.nodes().size() < 2 || topology_.nodes()[1].cpus.empty())
      GTEST_SKIP() << "needs two NUMA nodes with CPUs; host has " << topology_.summary();
    managedRoot_ = "atoll-test-" + std::to_string(::getpid()) + ".slice";
    auto enforcer = IslandEnforcer::open(topology_, std::string(kDefaultCgroupMount), managedRoot_);
    ASSERT_TRUE(enforcer) << enforcer.error().message();
    enforcer_.emplace(std::move(*enforcer));
  }
  void TearDown() override {
    if (!enforcer_) return;
    auto all = enforcer_->islands();
    if (all) {
      for (const auto& island : *all) EXPECT_TRUE(enforcer_->remove(island.name));
    }
    if (auto mount = Dir::open(std::string(kDefaultCgroupMount)))
      (void)mount->removeChild(managedRoot_);
  }

  Island onNode(std::string name, unsigned node) {
    Island island;
    island.name = std::move(name);
    island.cpus = topology_.nodes()[node].cpus;
    island.memNodes = {topology_.nodes()[node].osIndex};
    return island;
  }

  Topology topology_;
  std::string managedRoot_;
  std::optional<IslandEnforcer> enforcer_;
};

TEST_F(IslandEnforcerVmTest, IslandPerNodeKeepsCpusAndPagesThereAndPagesFollowNodeChanges) {
  // Node 0 keeps one CPU for the shared island (the host runs there).
  Island first = onNode("first", 0);
  first.cpus = {first.cpus.back()};
  Island second = onNode("second", 1);
  ASSERT_TRUE(enforcer_->apply({first, second}))
      << enforcer_->apply({first, second}).error().message();

  TouchingChild a;
  TouchingChild b;
  ASSERT_GT(a.pid(), 0);
  ASSERT_GT(b.pid(), 0);
  ASSERT_TRUE(enforcer_->pin("first", a.pid()));
  ASSERT_TRUE(enforcer_->pin("second", b.pid()));
  const uint64_t addressA = a.touchMemory();
  const uint64_t addressB = b.touchMemory();
  ASSERT_NE(addressA, 0u);
  ASSERT_NE(addressB, 0u);
  EXPECT_EQ(statusField(a.pid(), kStatusCpusAllowed), formatCpuList(first.cpus));
  EXPECT_EQ(statusField(b.pid(), kStatusCpusAllowed), formatCpuList(second.cpus));
  auto [aOnNode0, aTotal] = pagesOfMapping(a.pid(), addressA, 0);
  auto [bOnNode1, bTotal] = pagesOfMapping(b.pid(), addressB, 1);
  EXPECT_GT(aTotal, 0u);
  EXPECT_EQ(aOnNode0, aTotal);
  EXPECT_GT(bTotal, 0u);
  EXPECT_EQ(bOnNode1, bTotal);

  // Island "second" moves its memory to node 0: the pages follow.
  auto moved = enforcer_->moveMemory("second", {0});
  ASSERT_TRUE(moved) << moved.error().message();
  auto [bOnNode0, bTotalAfter] = pagesOfMapping(b.pid(), addressB, 0);
  std::cout << "moved " << moved->bytesMoved << " bytes in "
            << std::chrono::duration<double, std::milli>(moved->took).count() << " ms; mapping has "
            << bOnNode0 << " of " << bTotalAfter << " pages on node 0\n";
  EXPECT_EQ(bOnNode0, bTotalAfter);
  EXPECT_GE(moved->bytesMoved, kTouchedBytes);
}

TEST_F(IslandEnforcerVmTest, ResizedIslandsMembersFollow) {
  Island island = onNode("growing", 1);
  const CpuList nodeCpus = island.cpus;
  island.cpus = {nodeCpus.front()};
  ASSERT_TRUE(enforcer_->apply({island}));
  TouchingChild child;
  ASSERT_GT(child.pid(), 0);
  ASSERT_TRUE(enforcer_->pin("growing", child.pid()));
  EXPECT_EQ(statusField(child.pid(), kStatusCpusAllowed), formatCpuList(island.cpus));

  IslandAllocator allocator(topology_, {});
  auto grown = allocator.grow("growing", island.cpus, 1);
  ASSERT_TRUE(grown) << grown.error().message();
  island.cpus = grown->cpus;
  ASSERT_TRUE(enforcer_->apply({island}));
  EXPECT_EQ(statusField(child.pid(), kStatusCpusAllowed), formatCpuList(nodeCpus));

  auto shrunk = allocator.shrink("growing", island.cpus, 1);
  ASSERT_TRUE(shrunk) << shrunk.error().message();
  island.cpus = shrunk->cpus;
  ASSERT_TRUE(enforcer_->apply({island}));
  EXPECT_EQ(statusField(child.pid(), kStatusCpusAllowed), formatCpuList(shrunk->cpus));
}

TEST_F(IslandEnforcerVmTest, ExclusiveIslandTakesCpusOutOfTheSharedIsland) {
  Island island = onNode("exclusive", 1);
  island.exclusivity = Exclusivity::Root;
  auto applied = enforcer_->apply({island});
  ASSERT_TRUE(applied) << applied.error().message();
  auto status = enforcer_->status();
  ASSERT_TRUE(status) << status.error().message();
  ASSERT_EQ(status->size(), 1u);
  EXPECT_EQ(status->front().partitionProblem, "");
  EXPECT_EQ(status->front().island.exclusivity, Exclusivity::Root);
  EXPECT_EQ(status->front().effectiveCpus, island.cpus);

  // This test process lives in the shared island: it lost the CPUs.
  auto root = CgroupV2::open(std::string(kDefaultCgroupMount));
  ASSERT_TRUE(root);
  auto rootCpus = root->read(cgroupfile::kCpusetCpusEffective);
  ASSERT_TRUE(rootCpus) << rootCpus.error().message();
  auto shared = parseCpuList(*rootCpus, "root");
  ASSERT_TRUE(shared);
  EXPECT_TRUE(intersectionOf(*shared, island.cpus).empty()) << *rootCpus;
  TouchingChild outsider;
  ASSERT_GT(outsider.pid(), 0);
  auto allowed = parseCpuList(statusField(outsider.pid(), kStatusCpusAllowed), "status");
  ASSERT_TRUE(allowed);
  EXPECT_TRUE(intersectionOf(*allowed, island.cpus).empty());

  // A second island overlapping it is refused and nothing changes.
  Island overlapping = onNode("overlapping", 1);
  auto refused = enforcer_->apply({island, overlapping});
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("overlaps"), std::string::npos)
      << refused.error().message();
  auto after = enforcer_->islands();
  ASSERT_TRUE(after);
  EXPECT_EQ(after->size(), 1u);

  // Removing it gives the CPUs back to the shared island.
  ASSERT_TRUE(enforcer_->remove("exclusive"));
  auto restored = parseCpuList(root->read(cgroupfile::kCpusetCpusEffective).value_or(""), "root");
  ASSERT_TRUE(restored);
  EXPECT_EQ(intersectionOf(*restored, island.cpus), island.cpus);
}

// Every island's partition is valid and holds exactly its CPUs.
void expectExclusiveIslands(IslandEnforcer& enforcer, const std::vector<Island>& wanted) {
  auto status = enforcer.status();
  ASSERT_TRUE(status) << status.error().message();
  ASSERT_EQ(status->size(), wanted.size());
  for (const Island& island : wanted) {
    auto it = std::find_if(status->begin(), status->end(),
                           [&](const IslandStatus& s) { return s.island.name == island.name; });
    ASSERT_NE(it, status->end()) << island.name;
    EXPECT_EQ(it->partitionProblem, "") << island.name;
    EXPECT_EQ(it->island.exclusivity, island.exclusivity) << island.name;
    EXPECT_EQ(it->island.cpus, island.cpus) << island.name;
    EXPECT_EQ(it->effectiveCpus, island.cpus) << island.name;
  }
}

TEST_F(IslandEnforcerVmTest, ExclusiveIslandsSwapCpus) {
  const CpuList nodeCpus = topology_.nodes()[1].cpus;
  if (nodeCpus.size() < 2) GTEST_SKIP() << "needs two CPUs on node 1";
  Island left = onNode("left", 1);
  Island right = onNode("right", 1);
  left.cpus = {nodeCpus[0]};
  right.cpus = {nodeCpus[1]};
  left.exclusivity = right.exclusivity = Exclusivity::Root;
  auto applied = enforcer_->apply({left, right});
  ASSERT_TRUE(applied) << applied.error().message();
  TouchingChild member;
  ASSERT_GT(member.pid(), 0);
  ASSERT_TRUE(enforcer_->pin("left", member.pid()));

  // Each island takes the CPU the other one gives up.
  std::swap(left.cpus, right.cpus);
  auto swapped = enforcer_->apply({left, right});
  ASSERT_TRUE(swapped) << swapped.error().message();
  expectExclusiveIslands(*enforcer_, {left, right});
  EXPECT_EQ(statusField(member.pid(), kStatusCpusAllowed), formatCpuList(left.cpus));
}

TEST_F(IslandEnforcerVmTest, IslandListedFirstTakesTheCpusAnExclusiveIslandMovesAwayFrom) {
  const CpuList nodeCpus = topology_.nodes()[1].cpus;
  if (nodeCpus.size() < 2) GTEST_SKIP() << "needs two CPUs on node 1";
  Island mover = onNode("mover", 1);
  mover.cpus = {nodeCpus[0]};
  mover.exclusivity = Exclusivity::Root;
  auto applied = enforcer_->apply({mover});
  ASSERT_TRUE(applied) << applied.error().message();

  // A new island, listed first, takes the CPU the exclusive one leaves.
  Island taker = onNode("taker", 1);
  taker.cpus = mover.cpus;
  taker.exclusivity = Exclusivity::Root;
  mover.cpus = {nodeCpus[1]};
  auto moved = enforcer_->apply({taker, mover});
  ASSERT_TRUE(moved) << moved.error().message();
  expectExclusiveIslands(*enforcer_, {taker, mover});
}

}  // namespace
}  // namespace Atoll::numa
