// Topology loaded from recorded hwloc exports: every count, CPU set and size
// of the fixture machines, and clear errors for unreadable input.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "numa/Topology.h"

namespace Atoll::numa {
namespace {

const std::string kFixtures = ATOLL_NUMA_FIXTURES;
const std::string kTwoSocket = kFixtures + "/two-socket.xml";
const std::string kOneNode = kFixtures + "/one-node.xml";
constexpr std::uint64_t kGiB = 1ULL << 30;

CpuList range(unsigned first, unsigned last) {
  CpuList out;
  for (unsigned cpu = first; cpu <= last; ++cpu) out.push_back(cpu);
  return out;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

TEST(TopologyTest, TwoSocketFixtureHasTwoNodesWithTheirCpusAndMemory) {
  auto topology = Topology::fromXmlFile(kTwoSocket);
  ASSERT_TRUE(topology) << topology.error().message();
  ASSERT_EQ(topology->nodes().size(), 2u);
  EXPECT_EQ(topology->nodes()[0].osIndex, 0u);
  EXPECT_EQ(topology->nodes()[0].cpus, range(0, 15));
  EXPECT_EQ(topology->nodes()[0].localMemoryBytes, 16 * kGiB);
  EXPECT_EQ(topology->nodes()[1].osIndex, 1u);
  EXPECT_EQ(topology->nodes()[1].cpus, range(16, 31));
  EXPECT_EQ(topology->nodes()[1].localMemoryBytes, 16 * kGiB);
  EXPECT_EQ(topology->source(), kTwoSocket);
}

TEST(TopologyTest, TwoSocketFixtureHasPackagesCoresPusAndL3Domains) {
  auto topology = Topology::fromXmlFile(kTwoSocket);
  ASSERT_TRUE(topology) << topology.error().message();
  ASSERT_EQ(topology->packages().size(), 2u);
  EXPECT_EQ(topology->packages()[1].cpus, range(16, 31));
  ASSERT_EQ(topology->cores().size(), 16u);
  for (const auto& core : topology->cores()) EXPECT_EQ(core.cpus.size(), 2u);
  EXPECT_EQ(topology->cores()[5].cpus, (CpuList{10, 11}));
  EXPECT_EQ(topology->cpus(), range(0, 31));
  ASSERT_EQ(topology->l3Domains().size(), 4u);
  EXPECT_EQ(topology->l3Domains()[0].cpus, range(0, 7));
  EXPECT_EQ(topology->l3Domains()[3].cpus, range(24, 31));
  EXPECT_EQ(topology->l3Domains()[2].sizeBytes, 16u << 20);
  EXPECT_EQ(topology->summary(), "2 NUMA nodes, 2 packages, 16 cores, 32 PUs, 4 L3 domains");
}

TEST(TopologyTest, NodeOfCpuFollowsTheNodeCpuSets) {
  auto topology = Topology::fromXmlFile(kTwoSocket);
  ASSERT_TRUE(topology) << topology.error().message();
  EXPECT_EQ(topology->nodeOfCpu(0), 0u);
  EXPECT_EQ(topology->nodeOfCpu(15), 0u);
  EXPECT_EQ(topology->nodeOfCpu(16), 1u);
  EXPECT_EQ(topology->nodeOfCpu(31), 1u);
  EXPECT_FALSE(topology->nodeOfCpu(32).has_value());
}

TEST(TopologyTest, OneNodeFixtureSummaryUsesSingularNouns) {
  auto topology = Topology::fromXmlFile(kOneNode);
  ASSERT_TRUE(topology) << topology.error().message();
  EXPECT_EQ(topology->summary(), "1 NUMA node, 1 package, 2 cores, 2 PUs, 1 L3 domain");
  EXPECT_EQ(topology->nodes()[0].localMemoryBytes, 8 * kGiB);
  EXPECT_EQ(topology->cores()[1].cpus, (CpuList{1}));
}

TEST(TopologyTest, XmlBufferLoadsTheSameMachineAsTheFile) {
  auto fromFile = Topology::fromXmlFile(kTwoSocket);
  auto fromBuffer = Topology::fromXml(slurp(kTwoSocket));
  ASSERT_TRUE(fromFile) << fromFile.error().message();
  ASSERT_TRUE(fromBuffer) << fromBuffer.error().message();
  EXPECT_EQ(fromBuffer->summary(), fromFile->summary());
  EXPECT_EQ(fromBuffer->cpus(), fromFile->cpus());
  EXPECT_EQ(fromBuffer->source(), "xml buffer");
}

TEST(TopologyTest, MissingFileIsAnErrorNamingThePath) {
  const std::string path = kFixtures + "/no-such-machine.xml";
  auto topology = Topology::fromXmlFile(path);
  ASSERT_FALSE(topology);
  EXPECT_EQ(topology.error().path, path);
  EXPECT_NE(topology.error().message().find(path), std::string::npos);
}

TEST(TopologyTest, MalformedXmlIsAnError) {
  auto topology = Topology::fromXml("<topology version=\"2.0\"><object type=");
  EXPECT_FALSE(topology);
}

TEST(TopologyTest, FormatCpuListCollapsesRuns) {
  EXPECT_EQ(formatCpuList({}), "");
  EXPECT_EQ(formatCpuList({3}), "3");
  EXPECT_EQ(formatCpuList({0, 1, 2, 3}), "0-3");
  EXPECT_EQ(formatCpuList({0, 1, 2, 3, 8, 10, 11}), "0-3,8,10-11");
  EXPECT_EQ(formatCpuList({1, 3, 5}), "1,3,5");
}

}  // namespace
}  // namespace Atoll::numa
