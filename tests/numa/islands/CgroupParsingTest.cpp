// Parsing of cgroup v2 control file text and of page placement, on captured
// text (the files themselves are exercised in the test VM).
#include <gtest/gtest.h>

#include "numa/CgroupV2.h"
#include "numa/IslandEnforcer.h"
#include "numa/PageMigration.h"

namespace Atoll::numa {
namespace {

TEST(CgroupParsingTest, ControllerAndPidLists) {
  EXPECT_EQ(parseWordList("cpuset cpu io memory pids\n"),
            (std::vector<std::string>{"cpuset", "cpu", "io", "memory", "pids"}));
  auto pids = parsePidList("12\n345\n", "cgroup.procs");
  ASSERT_TRUE(pids) << pids.error().message();
  EXPECT_EQ(*pids, (std::vector<pid_t>{12, 345}));
  auto bad = parsePidList("12\nx1\n", "/sys/fs/cgroup/a/cgroup.procs");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("'x1'"), std::string::npos);
}

TEST(CgroupParsingTest, PartitionStateAndWeights) {
  EXPECT_EQ(partitionProblem("root\n"), "");
  EXPECT_EQ(partitionProblem("member"), "");
  EXPECT_EQ(partitionProblem("root invalid (Parent is not a partition root)\n"),
            "Parent is not a partition root");
  EXPECT_EQ(ioDefaultWeight("default 100\n8:0 200\n"), "100");
  EXPECT_EQ(parseMemoryValue("max\n"), std::nullopt);
  EXPECT_EQ(parseMemoryValue("1048576\n"), 1048576u);
}

// A partition the kernel refused reads "<type> invalid (reason)", but the
// file takes back only the type: that is what a rollback restores.
TEST(CgroupParsingTest, PartitionTypeLeavesOutTheKernelsReason) {
  EXPECT_EQ(partitionType("member\n"), Exclusivity::Shared);
  EXPECT_EQ(partitionType("root"), Exclusivity::Root);
  EXPECT_EQ(partitionType("isolated\n"), Exclusivity::Isolated);
  EXPECT_EQ(partitionType("isolated invalid (Cpu list in cpuset.cpus not exclusive)\n"),
            Exclusivity::Isolated);
  EXPECT_EQ(partitionType("root invalid (Parent is not a partition root)"), Exclusivity::Root);
  EXPECT_EQ(partitionType("root invalid"), Exclusivity::Root);
  EXPECT_EQ(partitionType(""), std::nullopt);
  EXPECT_EQ(partitionType("invalid (no type)"), std::nullopt);
}

TEST(PagePlacementTest, BytesMovedOffOldNodes) {
  auto entries = parseNumaMaps(
      "7f0000000000 default anon=10 dirty=10 N0=6 N1=4 kernelpagesize_kB=4\n"
      "7f1000000000 default anon=1 N1=1 kernelpagesize_kB=2048\n",
      "numa_maps");
  ASSERT_TRUE(entries) << entries.error().message();
  NodeBytes placement = bytesOnNodes(*entries);
  EXPECT_EQ(placement[0], 6u * 4096);
  EXPECT_EQ(placement[1], 4u * 4096 + 2u * 1024 * 1024);
  NodeBytes after{{1, 10u * 4096 + 2u * 1024 * 1024}};
  auto report = comparePlacement(placement, after, {1}, std::chrono::milliseconds(3));
  EXPECT_EQ(report.bytesMoved, 6u * 4096);
  // Nothing moves when the old placement was already inside the target.
  EXPECT_EQ(comparePlacement(after, after, {1}, {}).bytesMoved, 0u);
}

}  // namespace
}  // namespace Atoll::numa
