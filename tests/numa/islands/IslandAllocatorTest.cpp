// The allocator on recorded machines: whole cores, one L3 or node when it
// fits, nearest nodes when it spans, deterministic.
#include <gtest/gtest.h>

#include "numa/CpuSet.h"
#include "numa/Island.h"
#include "numa/IslandAllocator.h"
#include "tests/numa/islands/Fixtures.h"

namespace Atoll::numa {
namespace {

using testing::loadFixture;

CpuList range(unsigned first, unsigned last) {
  CpuList out;
  for (unsigned cpu = first; cpu <= last; ++cpu) out.push_back(cpu);
  return out;
}

TEST(IslandAllocatorTest, RecordedTopologiesLoadWithTheirShape) {
  Topology amd = loadFixture("amd-four-node-multi-llc.xml");
  EXPECT_EQ(amd.summary(), "4 NUMA nodes, 2 packages, 32 cores, 64 PUs, 8 L3 domains");
  EXPECT_EQ(amd.distance(0, 1), 12u);
  EXPECT_EQ(amd.distance(0, 2), 32u);
  EXPECT_EQ(amd.distance(3, 3), 10u);
  Topology smtOff = loadFixture("two-socket-smt-off.xml");
  EXPECT_EQ(smtOff.summary(), "2 NUMA nodes, 2 packages, 16 cores, 16 PUs, 2 L3 domains");
  // Without a recorded matrix, remote is the ACPI default.
  EXPECT_EQ(smtOff.distance(0, 1), 20u);
}

TEST(IslandAllocatorTest, WholeCoresNeverSplitSiblings) {
  Topology topology = loadFixture("two-socket.xml");
  IslandAllocator allocator(topology, {});
  auto placed = allocator.place("db", 3);
  ASSERT_TRUE(placed) << placed.error().message();
  EXPECT_EQ(placed->cpus, range(0, 3));  // 3 CPUs round up to 2 whole cores
  // With CPU 1 claimed, core 0-1 is not free at all.
  IslandAllocator around(topology, {1});
  auto next = around.place("web", 2);
  ASSERT_TRUE(next) << next.error().message();
  EXPECT_EQ(next->cpus, range(2, 3));
}

TEST(IslandAllocatorTest, StaysInsideOneL3WhenItFits) {
  Topology topology = loadFixture("amd-four-node-multi-llc.xml");
  // CCX 0 (CPUs 0-7) is half taken: a 4-CPU island goes to the tightest L3
  // that fits, the rest of CCX 0, not a fresh one.
  IslandAllocator allocator(topology, range(0, 3));
  auto placed = allocator.place("db", 4);
  ASSERT_TRUE(placed) << placed.error().message();
  EXPECT_EQ(placed->cpus, range(4, 7));
  EXPECT_EQ(placed->nodes, CpuList{0});
  // 8 CPUs do not fit in CCX 0 any more: a whole free L3 (CPUs 8-15).
  auto larger = allocator.place("web", 8);
  ASSERT_TRUE(larger) << larger.error().message();
  EXPECT_EQ(larger->cpus, range(8, 15));
}

TEST(IslandAllocatorTest, StaysInsideOneNodeWhenItFits) {
  Topology topology = loadFixture("amd-four-node-multi-llc.xml");
  IslandAllocator allocator(topology, {});
  auto placed = allocator.place("db", 12);
  ASSERT_TRUE(placed) << placed.error().message();
  EXPECT_EQ(placed->nodes, CpuList{0});
  EXPECT_EQ(placed->cpus.size(), 12u);
  // Filled from one L3 first: all of CCX 0, then part of CCX 1.
  EXPECT_EQ(intersectionOf(placed->cpus, range(0, 7)), range(0, 7));
}

TEST(IslandAllocatorTest, SpansTheNearestNodesByDistance) {
  Topology topology = loadFixture("amd-four-node-multi-llc.xml");
  // Node 0 is taken; 24 CPUs need two nodes: 1 and its package neighbour...
  // node 0 is full, so the pair must be 2 and 3 (distance 12), never 1 with a
  // node of the other package (distance 32).
  IslandAllocator allocator(topology, range(0, 15));
  auto placed = allocator.place("db", 24);
  ASSERT_TRUE(placed) << placed.error().message();
  EXPECT_EQ(placed->nodes, (CpuList{2, 3}));
  // Restricted to nodes 1 and 2 it must span across the packages.
  auto restricted = allocator.place("web", 24, {1, 2});
  ASSERT_TRUE(restricted) << restricted.error().message();
  EXPECT_EQ(restricted->nodes, (CpuList{1, 2}));
}

TEST(IslandAllocatorTest, SameInputSameAnswer) {
  Topology topology = loadFixture("amd-four-node-multi-llc.xml");
  IslandAllocator allocator(topology, {4, 5, 20, 21, 40, 41});
  auto first = allocator.place("db", 20);
  ASSERT_TRUE(first) << first.error().message();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(allocator.place("db", 20)->cpus, first->cpus);
}

TEST(IslandAllocatorTest, SmtOffUsesSingleThreadCores) {
  Topology topology = loadFixture("two-socket-smt-off.xml");
  IslandAllocator allocator(topology, {});
  auto placed = allocator.place("db", 3);
  ASSERT_TRUE(placed) << placed.error().message();
  EXPECT_EQ(placed->cpus, range(0, 2));
  auto spanning = allocator.place("big", 12);
  ASSERT_TRUE(spanning) << spanning.error().message();
  EXPECT_EQ(spanning->nodes, (CpuList{0, 1}));
  EXPECT_EQ(spanning->cpus.size(), 12u);
}

TEST(IslandAllocatorTest, RefusesWhatDoesNotFitNamingTheCount) {
  Topology topology = loadFixture("one-node.xml");
  IslandAllocator allocator(topology, {});
  auto placed = allocator.place("db", 2);
  ASSERT_FALSE(placed);
  EXPECT_NE(placed.error().message().find("'2'"), std::string::npos) << placed.error().message();
  EXPECT_NE(placed.error().message().find("shared island"), std::string::npos);
  EXPECT_TRUE(allocator.place("db", 1));
}

TEST(IslandAllocatorTest, GrowsNearAndShrinksFromTheOutskirts) {
  Topology topology = loadFixture("amd-four-node-multi-llc.xml");
  IslandAllocator allocator(topology, range(0, 3));
  auto grown = allocator.grow("db", range(0, 3), 4);
  ASSERT_TRUE(grown) << grown.error().message();
  EXPECT_EQ(grown->cpus, range(0, 7));  // same L3 first
  // Its own cores are never "added" again, claimed or not.
  IslandAllocator unclaimed(topology, {});
  EXPECT_EQ(unclaimed.grow("db", range(0, 3), 4)->cpus, range(0, 7));
  // An island on CPUs 0-7 plus one stray core on node 2 sheds the stray core.
  CpuList island = unionOf(range(0, 7), {32, 33});
  IslandAllocator owner(topology, island);
  auto shrunk = owner.shrink("db", island, 2);
  ASSERT_TRUE(shrunk) << shrunk.error().message();
  EXPECT_EQ(shrunk->cpus, range(0, 7));
  auto tooMuch = owner.shrink("db", island, 10);
  ASSERT_FALSE(tooMuch);
  EXPECT_NE(tooMuch.error().message().find("'10'"), std::string::npos);
}

}  // namespace
}  // namespace Atoll::numa
