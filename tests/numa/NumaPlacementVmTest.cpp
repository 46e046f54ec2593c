// In the test VM (two NUMA nodes, cgroup v2 with cpuset): a process moved into
// a cpuset cgroup bound to node 1 runs only on node 1's CPUs and gets the
// memory it touches afterwards from node 1 only.
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <thread>

#include "numa/NumaMaps.h"
#include "tests/numa/islands/TouchingChild.h"
#include "util/Fs.h"

namespace Atoll {
namespace {

using numa::test::kTouchedBytes;
using numa::test::TouchingChild;

constexpr const char* kCgroupRoot = "/sys/fs/cgroup";
constexpr const char* kNodeRoot = "/sys/devices/system/node";
constexpr std::string_view kControllers = "cgroup.controllers";
constexpr std::string_view kSubtreeControl = "cgroup.subtree_control";
constexpr std::string_view kProcs = "cgroup.procs";
constexpr std::string_view kCpusetCpus = "cpuset.cpus";
constexpr std::string_view kCpusetCpusEffective = "cpuset.cpus.effective";
constexpr std::string_view kCpusetMems = "cpuset.mems";
constexpr std::string_view kCpusetMemsEffective = "cpuset.mems.effective";
constexpr std::string_view kNodeCpuList = "cpulist";
constexpr std::string_view kStatusCpusAllowed = "Cpus_allowed_list:";

constexpr int kTargetNode = 1;

bool hasWord(std::string_view words, std::string_view word) {
  while (!words.empty()) {
    size_t space = words.find_first_of(" \n");
    if (words.substr(0, space) == word) return true;
    words.remove_prefix(space == std::string_view::npos ? words.size() : space + 1);
  }
  return false;
}

// The value of "Key:\tvalue" in /proc/PID/status.
std::optional<std::string> statusField(std::string_view status, std::string_view key) {
  while (!status.empty()) {
    size_t end = status.find('\n');
    std::string_view line = status.substr(0, end);
    status.remove_prefix(end == std::string_view::npos ? status.size() : end + 1);
    if (line.substr(0, key.size()) == key) return std::string(trim(line.substr(key.size())));
  }
  return std::nullopt;
}

// A child cgroup this test created; removed when the test ends, after its
// processes are gone.
class OwnedCgroup {
 public:
  OwnedCgroup(const Dir& parent, std::string name) : parent_(parent), name_(std::move(name)) {}
  ~OwnedCgroup() {
    // The kernel may report the group busy for a moment after its last
    // process was reaped.
    for (int attempt = 0; attempt < 100; ++attempt) {
      auto removed = parent_.removeChild(name_);
      if (removed || removed.error().errnum != EBUSY) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "could not remove cgroup " << parent_.path() << "/" << name_;
  }
  OwnedCgroup(const OwnedCgroup&) = delete;
  OwnedCgroup& operator=(const OwnedCgroup&) = delete;

 private:
  const Dir& parent_;
  std::string name_;
};

TEST(NumaPlacementVmTest, CpusetOnNodeOneKeepsCpusAndPagesOnNodeOne) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to create cgroups";
  auto cgroupRoot = Dir::open(kCgroupRoot);
  if (!cgroupRoot || !cgroupRoot->exists(kControllers)) {
    GTEST_SKIP() << kCgroupRoot << " is not a cgroup v2 mount (no " << kControllers
                 << "); this test runs in the test VM";
  }
  auto enabled = cgroupRoot->readFile(kSubtreeControl);
  ASSERT_TRUE(enabled) << enabled.error().message();
  if (!hasWord(*enabled, "cpuset")) {
    GTEST_SKIP() << "cpuset is not enabled in " << kCgroupRoot << "/" << kSubtreeControl << " ('"
                 << trim(*enabled) << "')";
  }
  auto nodes = Dir::open(kNodeRoot);
  ASSERT_TRUE(nodes) << nodes.error().message();
  const std::string nodeName = "node" + std::to_string(kTargetNode);
  if (!nodes->exists(nodeName)) {
    GTEST_SKIP() << "no NUMA " << nodeName << " in " << kNodeRoot << ": one node only";
  }
  auto node = nodes->openChild(nodeName);
  ASSERT_TRUE(node) << node.error().message();
  auto nodeCpusText = node->readFile(kNodeCpuList);
  ASSERT_TRUE(nodeCpusText) << nodeCpusText.error().message();
  const std::string nodeCpus(trim(*nodeCpusText));
  ASSERT_FALSE(nodeCpus.empty()) << nodeName << " has no CPUs";

  const std::string groupName = "atoll-numa-placement-" + std::to_string(::getpid());
  ASSERT_TRUE(cgroupRoot->makeChild(groupName)) << "cannot create " << groupName;
  OwnedCgroup owned(*cgroupRoot, groupName);
  auto group = cgroupRoot->openChild(groupName);
  ASSERT_TRUE(group) << group.error().message();
  auto wroteCpus = group->writeFile(kCpusetCpus, nodeCpus);
  ASSERT_TRUE(wroteCpus) << wroteCpus.error().message();
  auto wroteMems = group->writeFile(kCpusetMems, std::to_string(kTargetNode));
  ASSERT_TRUE(wroteMems) << wroteMems.error().message();
  EXPECT_EQ(trim(group->readFile(kCpusetCpusEffective).value_or("")), nodeCpus);
  EXPECT_EQ(trim(group->readFile(kCpusetMemsEffective).value_or("")), std::to_string(kTargetNode));

  TouchingChild child;
  ASSERT_GT(child.pid(), 0) << "fork failed: " << std::strerror(errno);
  auto moved = group->writeFile(kProcs, std::to_string(child.pid()));
  ASSERT_TRUE(moved) << moved.error().message();
  const uint64_t address = child.touchMemory();
  ASSERT_NE(address, 0u) << "the child could not map and touch " << kTouchedBytes << " bytes";

  auto proc = Dir::open("/proc/" + std::to_string(child.pid()));
  ASSERT_TRUE(proc) << proc.error().message();
  auto status = proc->readFile("status");
  ASSERT_TRUE(status) << status.error().message();
  auto allowed = statusField(*status, kStatusCpusAllowed);
  ASSERT_TRUE(allowed.has_value())
      << "no " << kStatusCpusAllowed << " in " << proc->path() << "/status";
  EXPECT_EQ(*allowed, nodeCpus);

  auto mapsText = proc->readFile("numa_maps");
  ASSERT_TRUE(mapsText) << mapsText.error().message();
  auto maps = parseNumaMaps(*mapsText, proc->path() + "/numa_maps");
  ASSERT_TRUE(maps) << maps.error().message();
  const NumaMapsEntry* touched = findMapping(*maps, address);
  ASSERT_NE(touched, nullptr) << "no mapping at 0x" << std::hex << address << " in\n" << *mapsText;
  ASSERT_GT(touched->kernelPageSizeKiB, 0u);
  const uint64_t expectedPages = kTouchedBytes / (touched->kernelPageSizeKiB * 1024);
  std::cout << "child " << child.pid() << " in " << group->path() << ": Cpus_allowed_list "
            << *allowed << ", touched mapping 0x" << std::hex << address << std::dec << " has "
            << touched->pagesOn(kTargetNode) << " of " << expectedPages << " pages on node "
            << kTargetNode << "\n";
  EXPECT_EQ(touched->pagesOn(kTargetNode), expectedPages)
      << "pages per node of the touched mapping: " << *mapsText;
  for (const auto& [otherNode, pages] : touched->pagesOnNode) {
    if (otherNode != kTargetNode) {
      EXPECT_EQ(pages, 0u) << pages << " pages on node " << otherNode;
    }
  }
}

}  // namespace
}  // namespace Atoll
