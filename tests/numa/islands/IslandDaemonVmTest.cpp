// In the test VM (full cgroup v2, four CPUs, two nodes): atolld holds the
// islands' desired state. `atoll island create` and `atoll island pin` go
// through its API; atolld is killed and started again, and from its
// persisted state it keeps the island and the pinned process where they
// were asked to be, putting back what was changed by hand while it was down
// (the process moved out, the island's cpuset rewritten). Bad input through
// the daemon is refused and changes nothing.
#include <signal.h>

#include "numa/CgroupV2.h"
#include "tests/numa/islands/IslandDaemonVmFixture.h"
#include "util/Fs.h"

namespace Atoll::numa {
namespace {

using namespace test;

TEST_F(IslandDaemonVmTest, DesiredStateSurvivesARestartAndHandEditsArePutBack) {
  const std::string island = std::string(kMount) + "/" + kManagedRoot + "/" + kIsland;
  startDaemon();
  ASSERT_EQ(atoll(std::string("create ") + kIsland + " --cpus 2-3 --nodes 1"), 0) << log();
  ASSERT_EQ(atoll(std::string("pin ") + kIsland + " " + std::to_string(member_)), 0) << log();
  ASSERT_TRUE(eventually([&] { return memberInPlace(); }, 15))
      << statusLine(member_, "Cpus_allowed_list") << " " << cgroupOf(member_) << "\n"
      << log();
  EXPECT_EQ(readFile(island + "/cpuset.mems").value_or("?"), "1\n");

  // Bad input through the daemon: refused as bad input, nothing changes.
  EXPECT_EQ(atoll("create other --cpus 9"), 2) << log();
  EXPECT_EQ(atoll("create other --cpus 0-3"), 2) << log();
  EXPECT_EQ(atoll("pin nosuch " + std::to_string(member_)), 2) << log();
  EXPECT_FALSE(Dir::open(std::string(kMount) + "/" + kManagedRoot + "/other"));

  // Killed without a chance to clean up; meanwhile someone edits by hand.
  stopDaemon(SIGKILL);
  auto root = CgroupV2::open(kMount);
  ASSERT_TRUE(root) << root.error().message();
  ASSERT_TRUE(root->moveProcess(member_));
  auto group = CgroupV2::open(island);
  ASSERT_TRUE(group) << group.error().message();
  ASSERT_TRUE(group->write("cpuset.cpus", "3"));
  ASSERT_FALSE(memberInPlace());

  // The restart reconciles from the persisted desired state.
  startDaemon();
  ASSERT_TRUE(eventually([&] { return memberInPlace(); }, 15))
      << statusLine(member_, "Cpus_allowed_list") << " " << cgroupOf(member_) << "\n"
      << log();
  EXPECT_EQ(readFile(island + "/cpuset.cpus").value_or("?"), "2-3\n");
  EXPECT_EQ(readFile(island + "/cpuset.mems").value_or("?"), "1\n");

  // Unpinning through the daemon sends the process back to the shared island.
  ASSERT_EQ(atoll("unpin " + std::to_string(member_)), 0) << log();
  EXPECT_TRUE(eventually([&] { return cgroupOf(member_) == "0::/"; }, 15))
      << cgroupOf(member_) << "\n"
      << log();
  // Deleting it through the daemon removes the island's cgroup.
  ASSERT_EQ(atoll(std::string("delete ") + kIsland), 0) << log();
  EXPECT_TRUE(eventually([&] { return !Dir::open(island); }, 15)) << log();
}

}  // namespace
}  // namespace Atoll::numa
