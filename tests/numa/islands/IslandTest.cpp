// Island validation: every rule, and each error naming the offending value.
#include <gtest/gtest.h>

#include "numa/CpuSet.h"
#include "numa/Island.h"
#include "tests/numa/islands/Fixtures.h"

namespace Atoll::numa {
namespace {

using testing::loadFixture;

Island island(std::string name, CpuList cpus, CpuList nodes,
              Exclusivity exclusivity = Exclusivity::Shared) {
  Island out;
  out.name = std::move(name);
  out.cpus = std::move(cpus);
  out.memNodes = std::move(nodes);
  out.exclusivity = exclusivity;
  return out;
}

std::string failure(const Topology& topology, const std::vector<Island>& islands) {
  auto checked = validateIslands(topology, islands);
  EXPECT_FALSE(checked) << "expected a validation error";
  return checked ? std::string() : checked.error().message();
}

TEST(CpuListTest, ParsesKernelListFormat) {
  auto cpus = parseCpuList("0-3,8,10-11\n", "test");
  ASSERT_TRUE(cpus) << cpus.error().message();
  EXPECT_EQ(*cpus, (CpuList{0, 1, 2, 3, 8, 10, 11}));
  EXPECT_EQ(formatCpuList(*cpus), "0-3,8,10-11");
  EXPECT_TRUE(parseCpuList("", "test")->empty());
}

TEST(CpuListTest, AcceptsSpacesAroundItemsAsInConfigFiles) {
  auto cpus = parseCpuList(" 0, 2 - 3 ,8 ", "transfer.cpus");
  ASSERT_TRUE(cpus) << cpus.error().message();
  EXPECT_EQ(*cpus, (CpuList{0, 2, 3, 8}));
  EXPECT_FALSE(parseCpuList("0, ,1", "transfer.cpus"));
  EXPECT_FALSE(parseCpuList("1 2", "transfer.cpus"));
}

TEST(CpuListTest, RejectsMalformedListsNamingTheRange) {
  for (const char* bad : {"3-1", "a", "1,,2", "0-", "-4", "99999999", "1 2"}) {
    auto cpus = parseCpuList(bad, "--cpus");
    ASSERT_FALSE(cpus) << bad;
    EXPECT_NE(cpus.error().message().find("--cpus"), std::string::npos);
    EXPECT_NE(cpus.error().message().find(bad), std::string::npos) << cpus.error().message();
  }
}

TEST(IslandValidationTest, AcceptsDisjointIslandsOnePerNode) {
  Topology topology = loadFixture("two-socket.xml");
  EXPECT_TRUE(validateIslands(topology, {island("db", {0, 1, 2, 3}, {0}, Exclusivity::Root),
                                         island("batch", {16, 17}, {1})}));
  EXPECT_EQ(sharedCpus(topology, {island("db", {0, 1, 2, 3}, {0})}).size(), 28u);
}

TEST(IslandValidationTest, RejectsOverlappingExclusiveIslands) {
  Topology topology = loadFixture("two-socket.xml");
  std::string message = failure(topology, {island("db", {0, 1, 2, 3}, {0}, Exclusivity::Root),
                                           island("web", {2, 3, 4, 5}, {0})});
  EXPECT_NE(message.find("'2-3'"), std::string::npos) << message;
  EXPECT_NE(message.find("web"), std::string::npos) << message;
  // Shared islands may overlap each other.
  EXPECT_TRUE(
      validateIslands(topology, {island("a", {0, 1, 2, 3}, {0}), island("b", {2, 3, 4, 5}, {0})}));
}

TEST(IslandValidationTest, RejectsCpuOrNodeThatDoesNotExist) {
  Topology topology = loadFixture("two-socket.xml");
  std::string cpu = failure(topology, {island("db", {0, 1, 64}, {0})});
  EXPECT_NE(cpu.find("'64'"), std::string::npos) << cpu;
  EXPECT_NE(cpu.find("CPU 64 does not exist"), std::string::npos) << cpu;
  std::string node = failure(topology, {island("db", {0, 1}, {0, 7})});
  EXPECT_NE(node.find("NUMA node 7 does not exist"), std::string::npos) << node;
}

TEST(IslandValidationTest, RejectsLeavingTheSharedIslandEmpty) {
  Topology topology = loadFixture("one-node.xml");
  std::string message = failure(topology, {island("all", {0, 1}, {0})});
  EXPECT_NE(message.find("shared island empty"), std::string::npos) << message;
  EXPECT_NE(message.find("'0-1'"), std::string::npos) << message;
}

TEST(IslandValidationTest, RejectsSplitSmtSiblings) {
  Topology topology = loadFixture("two-socket.xml");
  std::string message = failure(topology, {island("a", {0}, {0}), island("b", {1}, {0})});
  EXPECT_NE(message.find("SMT siblings 0-1"), std::string::npos) << message;
}

TEST(IslandValidationTest, RejectsBadNamesAndLimits) {
  Topology topology = loadFixture("two-socket.xml");
  EXPECT_NE(failure(topology, {island("", {0, 1}, {0})}).find("1 to 64 characters"),
            std::string::npos);
  for (const char* name : {"shared", "../etc", "a b", ".hidden"}) {
    std::string message = failure(topology, {island(name, {0, 1}, {0})});
    EXPECT_NE(message.find(std::string("'") + name + "'"), std::string::npos) << message;
  }
  Island weighted = island("db", {0, 1}, {0});
  weighted.limits.cpuWeight = 20000;
  EXPECT_NE(failure(topology, {weighted}).find("'20000'"), std::string::npos);
  Island throttled = island("db", {0, 1}, {0});
  throttled.limits.cpuMax = "10 100000";
  EXPECT_NE(failure(topology, {throttled}).find("'10 100000'"), std::string::npos);
  Island memory = island("db", {0, 1}, {0});
  memory.limits.memoryLow = 2048;
  memory.limits.memoryMax = 1024;
  EXPECT_NE(failure(topology, {memory}).find("memory.low exceeds memory.max"), std::string::npos);
  Island duplicate = island("db", {2, 3}, {0});
  EXPECT_NE(failure(topology, {island("db", {0, 1}, {0}), duplicate}).find("two islands"),
            std::string::npos);
}

}  // namespace
}  // namespace Atoll::numa
