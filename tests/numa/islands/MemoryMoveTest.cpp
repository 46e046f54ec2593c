// An island's last memory move as atolld reports it: which islands' nodes
// change between two sets, the JSON form written by the daemon and read by
// the CLI, and bad wire data refused naming the value.
#include "numa/MemoryMove.h"
#include "tests/numa/islands/IslandOf.h"

#include <gtest/gtest.h>

namespace Atoll::numa {
namespace {

using testing::island;

TEST(MemoryNodeChanges, OnlyIslandsPresentInBothWithOtherNodesChange) {
  const std::vector<Island> current = {island("a", {0, 1}, {0}), island("b", {2, 3}, {1}),
                                       island("gone", {4}, {0})};
  const std::vector<Island> target = {island("a", {0}, {0}), island("b", {2, 3}, {0, 1}),
                                      island("new", {5}, {1})};
  auto changes = memoryNodeChanges(current, target);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].island, "b");
  EXPECT_EQ(changes[0].fromNodes, (CpuList{1}));
  EXPECT_EQ(changes[0].toNodes, (CpuList{0, 1}));
  EXPECT_TRUE(memoryNodeChanges(current, current).empty());
}

TEST(MemoryMoveJson, AMoveReadsBackAsWritten) {
  PageMoveReport report;
  report.bytesMoved = 33554432;
  report.took = std::chrono::microseconds(12500);
  MemoryMove move = memoryMoveOf(report, {0}, {1}, 42, 1'700'000'000'000);
  EXPECT_DOUBLE_EQ(move.milliseconds, 12.5);
  const nlohmann::json json = memoryMoveJson(move);
  EXPECT_EQ(json["from_nodes"], "0");
  EXPECT_EQ(json["to_nodes"], "1");
  EXPECT_EQ(json["bytes_moved"], 33554432u);
  EXPECT_TRUE(json["error"].is_null());
  auto back = parseMemoryMoveJson(json, "test");
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(*back, move);

  MemoryMove failed{{0}, {0, 1}, 0, 0, 7, 1, "write cpuset.mems: Device or resource busy"};
  auto failedBack = parseMemoryMoveJson(memoryMoveJson(failed), "test");
  ASSERT_TRUE(failedBack) << failedBack.error().message();
  EXPECT_EQ(*failedBack, failed);
}

TEST(MemoryMoveJson, BadWireDataIsRefusedNamingTheValue) {
  const nlohmann::json good = memoryMoveJson(MemoryMove{{0}, {1}, 4096, 1.5, 3, 1, {}});
  auto refused = [&](const char* key, nlohmann::json value, const std::string& named) {
    nlohmann::json bad = good;
    if (value.is_discarded())
      bad.erase(key);
    else
      bad[key] = value;
    auto parsed = parseMemoryMoveJson(bad, "/v1/islands island x");
    ASSERT_FALSE(parsed) << key;
    EXPECT_NE(parsed.error().message().find(named), std::string::npos) << parsed.error().message();
  };
  refused("bytes_moved", -5, "-5");
  refused("bytes_moved", "many", "many");
  refused("revision", nlohmann::json::value_t::discarded, "revision");
  refused("to_nodes", "1-x", "1-x");
  refused("from_nodes", 3, "from_nodes");
  refused("milliseconds", -1.0, "milliseconds");
  refused("error", 17, "error");
  EXPECT_FALSE(parseMemoryMoveJson(nlohmann::json::array(), "x"));
}

TEST(DescribePageMove, TheWordingOfEveryPath) {
  EXPECT_EQ(describePageMove(4096, 2.5), "moved 4096 bytes of members' memory in 2.5 ms");
}

}  // namespace
}  // namespace Atoll::numa
