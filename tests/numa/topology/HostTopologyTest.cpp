// Topology of the live host against what the kernel itself says in sysfs:
// the online CPUs and the online NUMA nodes.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "numa/Topology.h"

namespace Atoll::numa {
namespace {

constexpr const char* kOnlineCpus = "/sys/devices/system/cpu/online";
constexpr const char* kOnlineNodes = "/sys/devices/system/node/online";

// Parses the kernel's cpulist format ("0-3,8") into the list it names.
CpuList parseCpuList(const std::string& text) {
  CpuList out;
  std::stringstream in(text);
  std::string part;
  while (std::getline(in, part, ',')) {
    if (part.empty() || part == "\n") continue;
    auto dash = part.find('-');
    unsigned first = std::stoul(part.substr(0, dash));
    unsigned last = dash == std::string::npos ? first : std::stoul(part.substr(dash + 1));
    for (unsigned cpu = first; cpu <= last; ++cpu) out.push_back(cpu);
  }
  return out;
}

std::string readText(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

TEST(HostTopologyTest, CpusMatchTheKernelsOnlineCpus) {
  auto topology = Topology::fromHost();
  ASSERT_TRUE(topology) << topology.error().message();
  std::string online = readText(kOnlineCpus);
  ASSERT_FALSE(online.empty()) << "cannot read " << kOnlineCpus;
  EXPECT_EQ(topology->cpus(), parseCpuList(online));
  EXPECT_EQ(formatCpuList(topology->cpus()), online);
  EXPECT_EQ(topology->source(), "host");
}

TEST(HostTopologyTest, NodesMatchTheKernelsOnlineNodes) {
  std::string online = readText(kOnlineNodes);
  if (online.empty())
    GTEST_SKIP() << kOnlineNodes << " is absent: kernel built without CONFIG_NUMA";
  auto topology = Topology::fromHost();
  ASSERT_TRUE(topology) << topology.error().message();
  CpuList nodeIndexes;
  for (const auto& node : topology->nodes()) nodeIndexes.push_back(node.osIndex);
  EXPECT_EQ(nodeIndexes, parseCpuList(online));
  for (unsigned cpu : topology->cpus()) EXPECT_TRUE(topology->nodeOfCpu(cpu).has_value()) << cpu;
}

}  // namespace
}  // namespace Atoll::numa
