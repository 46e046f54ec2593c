// Island numbers for the cross-island wait: stable while an island exists,
// membership by cgroup path under the managed root.
#include "bpf/collector/IslandNumbering.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

namespace Atoll::telemetry {
namespace {

TEST(IslandNumbering, WorkloadsBelongToTheIslandWhoseCgroupHoldsTheirs) {
  IslandNumbering islands("atoll.slice");
  EXPECT_TRUE(islands.update({"db", "web"}).empty());
  const uint32_t db = islands.islandOf("atoll.slice/db");
  const uint32_t web = islands.islandOf("atoll.slice/web/vm1/vcpu0");
  EXPECT_GE(db, 1u);
  EXPECT_GE(web, 1u);
  EXPECT_NE(db, web);
  EXPECT_EQ(islands.islandOf("atoll.slice/db/vm7"), db);
  EXPECT_EQ(islands.islandOf("machine.slice/vm1"), 0u);
  EXPECT_EQ(islands.islandOf("atoll.slice"), 0u);
  EXPECT_EQ(islands.islandOf("atoll.slice/dbx/vm"), 0u) << "a name prefix is not the island";
  EXPECT_EQ(islands.islandOf("atoll.slicex/db"), 0u);
  EXPECT_EQ(islands.islandOf("atoll.slice/other"), 0u) << "not an island (yet)";
}

TEST(IslandNumbering, AnIslandKeepsItsNumberAndFreedNumbersAreReusedLast) {
  IslandNumbering islands("atoll.slice");
  islands.update({"a", "b"});
  const uint32_t a = islands.islandOf("atoll.slice/a");
  const uint32_t b = islands.islandOf("atoll.slice/b");
  islands.update({"b", "c"});
  EXPECT_EQ(islands.islandOf("atoll.slice/a"), 0u);
  EXPECT_EQ(islands.islandOf("atoll.slice/b"), b);
  const uint32_t c = islands.islandOf("atoll.slice/c");
  EXPECT_NE(c, a) << "a number just freed is not handed out again at once";
  EXPECT_NE(c, b);
  islands.update({});
  EXPECT_TRUE(islands.empty());
}

TEST(IslandNumbering, IslandsPastTheLimitAreNamedNotNumbered) {
  IslandNumbering islands("atoll.slice");
  std::vector<std::string> names;
  for (uint32_t i = 0; i < IslandNumbering::kMaxIslands + 2; ++i)
    names.push_back("island" + std::to_string(100 + i));
  auto unnumbered = islands.update(names);
  EXPECT_EQ(unnumbered.size(), 2u);
  EXPECT_EQ(islands.numbers().size(), IslandNumbering::kMaxIslands);
  for (const auto& [name, number] : islands.numbers()) {
    EXPECT_GE(number, 1u);
    EXPECT_LE(number, IslandNumbering::kMaxIslands);
  }
}

TEST(IslandNumbering, IslandCgroupsAreTheManagedRootsChildDirectories) {
  char pattern[] = "/tmp/atoll-islands-XXXXXX";
  ASSERT_NE(::mkdtemp(pattern), nullptr);
  const std::string root = pattern;
  auto mount = Dir::open(root);
  ASSERT_TRUE(mount) << mount.error().message();
  auto none = listIslandCgroups(*mount, "atoll.slice");
  ASSERT_TRUE(none) << none.error().message();
  EXPECT_TRUE(none->empty()) << "no managed root: no islands";
  ASSERT_EQ(::mkdir((root + "/atoll.slice").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((root + "/atoll.slice/web").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((root + "/atoll.slice/db").c_str(), 0755), 0);
  std::ofstream(root + "/atoll.slice/cgroup.procs") << "";
  auto found = listIslandCgroups(*mount, "atoll.slice");
  ASSERT_TRUE(found) << found.error().message();
  EXPECT_EQ(*found, (std::vector<std::string>{"db", "web"}));
  ::unlink((root + "/atoll.slice/cgroup.procs").c_str());
  ::rmdir((root + "/atoll.slice/web").c_str());
  ::rmdir((root + "/atoll.slice/db").c_str());
  ::rmdir((root + "/atoll.slice").c_str());
  ::rmdir(root.c_str());
}

}  // namespace
}  // namespace Atoll::telemetry
