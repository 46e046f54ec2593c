// In the test VM (full cgroup v2, four CPUs, two nodes): changing an
// island's memory node through atolld moves its member's pages, and `atoll
// island resize` through the daemon reports the bytes moved and the time
// taken, as the direct path does; `atoll island show` reports the same move,
// also after the daemon restarts.
// A binary of its own: the in-VM limit is per binary.
#include <gtest/gtest.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "numa/PageMigration.h"
#include "tests/numa/islands/IslandDaemonVmFixture.h"
#include "tests/numa/islands/TouchingChild.h"
#include "util/Fs.h"

namespace Atoll::numa {
namespace {

using namespace test;

TEST_F(IslandDaemonVmTest, ChangingMemoryNodesMovesThePagesAndReportsBytesAndTime) {
  const std::string island = std::string(kMount) + "/" + kManagedRoot + "/" + kIsland;
  test::TouchingChild toucher;
  ASSERT_GT(toucher.pid(), 0);
  startDaemon();
  // The island's CPUs are node 1's, its memory node 0's: the member's pages
  // start on node 0.
  ASSERT_EQ(atoll(std::string("create ") + kIsland + " --cpus 2-3 --nodes 0"), 0) << log();
  ASSERT_EQ(atoll(std::string("pin ") + kIsland + " " + std::to_string(toucher.pid())), 0) << log();
  ASSERT_TRUE(eventually(
      [&] {
        return cgroupOf(toucher.pid()) == std::string("0::/") + kManagedRoot + "/" + kIsland &&
               readFile(island + "/cpuset.mems").value_or("") == "0\n";
      },
      15))
      << cgroupOf(toucher.pid()) << "\n"
      << log();
  const uint64_t address = toucher.touchMemory();
  ASSERT_NE(address, 0u);
  auto [onNode0, touchedPages] = test::pagesOfMapping(toucher.pid(), address, 0);
  ASSERT_GT(touchedPages, 0u);
  ASSERT_EQ(onNode0, touchedPages);
  // All the member holds on node 0: no more than that can leave it.
  auto held = processPlacement({toucher.pid()});
  ASSERT_TRUE(held) << held.error().message();
  const uint64_t heldOnNode0 = (*held)[0];
  ASSERT_GE(heldOnNode0, test::kTouchedBytes);

  std::string output;
  ASSERT_EQ(atoll(std::string("--json resize ") + kIsland + " --nodes 1", output), 0)
      << output << "\n"
      << log();
  const nlohmann::json reply = nlohmann::json::parse(output, nullptr, false);
  ASSERT_TRUE(reply.is_object()) << output;
  ASSERT_TRUE(reply.contains("bytes_moved") && reply.contains("milliseconds")) << output;
  const auto bytesMoved = reply["bytes_moved"].get<uint64_t>();
  const auto milliseconds = reply["milliseconds"].get<double>();
  std::cout << "atolld moved " << bytesMoved << " bytes in " << milliseconds << " ms ("
            << test::kTouchedBytes << " touched, " << heldOnNode0 << " held on node 0)\n";
  EXPECT_GE(bytesMoved, test::kTouchedBytes);
  EXPECT_LE(bytesMoved, heldOnNode0);
  EXPECT_GT(milliseconds, 0.0);
  EXPECT_EQ(reply["memory_move"]["from_nodes"], "0") << output;
  EXPECT_EQ(reply["memory_move"]["to_nodes"], "1") << output;
  EXPECT_EQ(reply["memory_move"]["revision"], reply["revision"]) << output;
  EXPECT_TRUE(reply["memory_move"]["error"].is_null()) << output;

  // The pages are on node 1 now, as numa_maps shows them.
  auto [onNode1, pagesAfter] = test::pagesOfMapping(toucher.pid(), address, 1);
  EXPECT_EQ(pagesAfter, touchedPages);
  EXPECT_EQ(onNode1, pagesAfter);
  EXPECT_EQ(readFile(island + "/cpuset.mems").value_or("?"), "1\n");

  // `island show` reports the same move; a second resize to the same node
  // has nothing to move and says so without waiting.
  ASSERT_EQ(atoll(std::string("--json show ") + kIsland, output), 0) << log();
  const nlohmann::json shown = nlohmann::json::parse(output, nullptr, false);
  ASSERT_TRUE(shown.is_object()) << output;
  EXPECT_EQ(shown["last_memory_move"]["bytes_moved"], bytesMoved) << output;
  ASSERT_EQ(atoll(std::string("show ") + kIsland, output), 0) << log();
  EXPECT_NE(output.find("last memory move: nodes 0 -> 1, moved " + std::to_string(bytesMoved) +
                        " bytes of members' memory in "),
            std::string::npos)
      << output;
  ASSERT_EQ(atoll(std::string("resize ") + kIsland + " --nodes 1", output), 0) << log();
  EXPECT_NE(log().find("already on nodes 1; nothing to move"), std::string::npos) << log();

  // A restarted daemon still reports the last move: it is kept as a fact.
  stopDaemon(SIGTERM);
  startDaemon();
  nlohmann::json afterRestart;
  // The island is in the daemon's view from its first tick on.
  EXPECT_TRUE(eventually(
      [&] {
        if (atoll(std::string("--json show ") + kIsland, output) != 0) return false;
        afterRestart = nlohmann::json::parse(output, nullptr, false);
        return afterRestart.is_object() && afterRestart.contains("last_memory_move");
      },
      15))
      << output << "\n"
      << log();
  EXPECT_EQ(afterRestart["last_memory_move"], shown["last_memory_move"]) << output;
}

}  // namespace
}  // namespace Atoll::numa
