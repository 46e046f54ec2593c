// Verdicts computed from what a probe observed, without the kernel:
// cgroup v2 controllers, io_uring opcodes and the NUMA topology.
#include <gtest/gtest.h>

#include "kernel-configs/CgroupProbes.h"
#include "kernel-configs/IoUringProbe.h"
#include "kernel-configs/NumaProbe.h"

namespace Atoll::capability {
namespace {

const Cgroup2Location kHybrid{"/sys/fs/cgroup/unified", true};
const Cgroup2Location kUnified{"/sys/fs/cgroup", false};

TEST(ControllersTest, OnlyHugetlbOnAHybridHostIsMissingEverythingAtollNeeds) {
  Feature feature = assessControllers("hugetlb\n", "", kHybrid);
  EXPECT_EQ(feature.name, "cgroup2.controllers");
  EXPECT_TRUE(feature.required);
  EXPECT_EQ(feature.status, FeatureStatus::Missing);
  EXPECT_NE(feature.detail.find("offers hugetlb"), std::string::npos) << feature.detail;
  EXPECT_NE(feature.detail.find("missing cpuset cpu memory io pids"), std::string::npos)
      << feature.detail;
  EXPECT_NE(feature.fix.find("systemd.unified_cgroup_hierarchy=1"), std::string::npos);
  EXPECT_NE(feature.fix.find("CONFIG_CPUSETS"), std::string::npos);
}

TEST(ControllersTest, EveryNeededControllerIsOkAndEnabledOnesAreNamed) {
  Feature feature = assessControllers("cpuset cpu io memory hugetlb pids rdma misc\n",
                                      "cpuset cpu io memory pids\n", kUnified);
  EXPECT_EQ(feature.status, FeatureStatus::Ok);
  EXPECT_NE(feature.detail.find("enabled for children: cpu cpuset io memory pids"),
            std::string::npos)
      << feature.detail;
}

TEST(ControllersTest, OneMissingControllerFailsAndOnlyItsOptionIsSuggested) {
  Feature feature = assessControllers("cpuset cpu memory pids", "", kUnified);
  EXPECT_EQ(feature.status, FeatureStatus::Missing);
  EXPECT_NE(feature.detail.find("missing io"), std::string::npos) << feature.detail;
  EXPECT_EQ(feature.fix, "CONFIG_BLK_CGROUP in the kernel");
}

TEST(ControllersTest, EmptyControllersFileSaysNone) {
  Feature feature = assessControllers("", "", kUnified);
  EXPECT_EQ(feature.status, FeatureStatus::Missing);
  EXPECT_NE(feature.detail.find("offers none"), std::string::npos) << feature.detail;
}

std::set<int> allOpcodes() {
  std::set<int> out;
  for (const auto& op : kIoUringOpcodes) out.insert(op.opcode);
  return out;
}

TEST(IoUringAssessTest, AllOpcodesMakeBothFeaturesOk) {
  IoUringObservation seen;
  seen.supportedOpcodes = allOpcodes();
  seen.lastOpcode = 58;
  auto features = assessIoUring(seen);
  ASSERT_EQ(features.size(), 2u);
  EXPECT_EQ(features[0].name, "io_uring");
  EXPECT_TRUE(features[0].required);
  EXPECT_EQ(features[0].status, FeatureStatus::Ok);
  EXPECT_NE(features[0].detail.find("READ_FIXED"), std::string::npos);
  EXPECT_EQ(features[1].name, "io_uring.opcodes");
  EXPECT_FALSE(features[1].required);
  EXPECT_EQ(features[1].status, FeatureStatus::Ok);
}

TEST(IoUringAssessTest, MissingZeroCopySendOnlyDegrades) {
  IoUringObservation seen;
  seen.supportedOpcodes = allOpcodes();
  seen.supportedOpcodes.erase(47);  // SEND_ZC
  auto features = assessIoUring(seen);
  EXPECT_EQ(features[0].status, FeatureStatus::Ok);
  EXPECT_EQ(features[1].status, FeatureStatus::Degraded);
  EXPECT_NE(features[1].detail.find("SEND_ZC"), std::string::npos);
  EXPECT_EQ(features[1].detail.find("SENDMSG_ZC"), std::string::npos) << features[1].detail;
}

TEST(IoUringAssessTest, MissingRequiredOpcodeIsMissing) {
  IoUringObservation seen;
  seen.supportedOpcodes = allOpcodes();
  seen.supportedOpcodes.erase(30);  // SPLICE
  auto features = assessIoUring(seen);
  EXPECT_EQ(features[0].status, FeatureStatus::Missing);
  EXPECT_NE(features[0].detail.find("SPLICE"), std::string::npos);
}

TEST(IoUringAssessTest, SetupRefusedNamesTheSysctl) {
  IoUringObservation seen;
  seen.setupError = Error::fromErrno("io_uring_setup", "io_uring", EPERM, "8");
  seen.disabledSysctl = "2\n";
  auto features = assessIoUring(seen);
  EXPECT_EQ(features[0].status, FeatureStatus::Missing);
  EXPECT_NE(features[0].detail.find("kernel.io_uring_disabled = 2"), std::string::npos)
      << features[0].detail;
  EXPECT_NE(features[0].fix.find("io_uring_disabled=0"), std::string::npos);
  EXPECT_EQ(features[1].status, FeatureStatus::Degraded);
}

TEST(IoUringAssessTest, FailedNopIsMissing) {
  IoUringObservation seen;
  seen.nopError = Error::fromErrno("io_uring_wait_cqe", "io_uring", ETIME, "NOP");
  EXPECT_EQ(assessIoUring(seen)[0].status, FeatureStatus::Missing);
}

const std::string kFixtures = ATOLL_NUMA_FIXTURES;

TEST(NumaAssessTest, TwoNodeMachineIsOk) {
  auto topology = numa::Topology::fromXmlFile(kFixtures + "/two-socket.xml");
  ASSERT_TRUE(topology) << topology.error().message();
  Feature feature = assessTopology(topology, true);
  EXPECT_EQ(feature.name, "numa.topology");
  EXPECT_TRUE(feature.required);
  EXPECT_EQ(feature.status, FeatureStatus::Ok);
  EXPECT_EQ(feature.detail, "2 NUMA nodes, 2 packages, 16 cores, 32 PUs, 4 L3 domains");
}

TEST(NumaAssessTest, SingleNodeIsOkWithANote) {
  auto topology = numa::Topology::fromXmlFile(kFixtures + "/one-node.xml");
  ASSERT_TRUE(topology) << topology.error().message();
  Feature feature = assessTopology(topology, true);
  EXPECT_EQ(feature.status, FeatureStatus::Ok);
  EXPECT_NE(feature.detail.find("single node"), std::string::npos) << feature.detail;
}

TEST(NumaAssessTest, KernelWithoutNumaOrUnreadableTopologyIsMissing) {
  auto topology = numa::Topology::fromXmlFile(kFixtures + "/one-node.xml");
  ASSERT_TRUE(topology) << topology.error().message();
  Feature noNuma = assessTopology(topology, false);
  EXPECT_EQ(noNuma.status, FeatureStatus::Missing);
  EXPECT_EQ(noNuma.fix, "CONFIG_NUMA=y");
  Feature unreadable = assessTopology(numa::Topology::fromXmlFile(kFixtures + "/absent.xml"), true);
  EXPECT_EQ(unreadable.status, FeatureStatus::Missing);
  EXPECT_NE(unreadable.detail.find("absent.xml"), std::string::npos);
}

}  // namespace
}  // namespace Atoll::capability
