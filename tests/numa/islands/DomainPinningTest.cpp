// Pinning VMs to islands above the VmPinner interface: every vCPU, the
// emulator and every I/O thread on the island's CPUs, memory on its nodes;
// an unknown VM is an error naming it; a failure half-way changes nothing.
#include "numa/DomainPinning.h"

#include <gtest/gtest.h>

#include "tests/numa/islands/InMemoryVmPinner.h"
#include "tests/numa/islands/IslandOf.h"

namespace Atoll::numa {
namespace {

using testing::InMemoryVmPinner;
using testing::island;

TEST(DomainPinningTest, PinsEveryThreadAndTheMemoryToTheIsland) {
  InMemoryVmPinner pinner(8, 2);
  pinner.addDomain("db-1", 3, 2);
  auto change = pinDomainToIsland(pinner, island("db", {4, 5}, {1}), "db-1");
  ASSERT_TRUE(change) << change.error().message();
  const DomainPinning& now = pinner.state("db-1");
  EXPECT_EQ(now.vcpus, (std::vector<CpuList>{{4, 5}, {4, 5}, {4, 5}}));
  EXPECT_EQ(now.emulator, (CpuList{4, 5}));
  EXPECT_EQ(now.iothreads, (std::vector<IothreadPin>{{1, {4, 5}}, {2, {4, 5}}}));
  EXPECT_EQ(now.memoryNodes, (CpuList{1}));
  EXPECT_EQ(change->after, now);
  EXPECT_EQ(change->before.emulator, (CpuList{0, 1, 2, 3, 4, 5, 6, 7}));
}

TEST(DomainPinningTest, UnknownVmIsAnErrorNamingItAndChangesNothing) {
  InMemoryVmPinner pinner(4, 1);
  pinner.addDomain("web-1", 2, 0);
  auto change = pinDomainToIsland(pinner, island("web", {2, 3}, {0}), "web-9");
  ASSERT_FALSE(change);
  const std::string message = change.error().message();
  EXPECT_NE(message.find("'web-9'"), std::string::npos) << message;
  EXPECT_NE(message.find("no such libvirt domain"), std::string::npos) << message;
  EXPECT_EQ(pinner.changes(), 0u);
}

TEST(DomainPinningTest, FailureHalfWayRestoresThePreviousPinning) {
  InMemoryVmPinner pinner(4, 2);
  pinner.addDomain("batch-1", 2, 1);
  ASSERT_TRUE(pinner.pinVcpu("batch-1", 1, {3}));
  const DomainPinning before = pinner.state("batch-1");
  // vCPU 0, vCPU 1 and the emulator succeed; the I/O thread fails.
  pinner.failChange(3);
  auto change = pinDomainToIsland(pinner, island("batch", {0, 1}, {0}), "batch-1");
  ASSERT_FALSE(change);
  const std::string message = change.error().message();
  EXPECT_NE(message.find("previous pinning was restored"), std::string::npos) << message;
  EXPECT_NE(message.find("batch"), std::string::npos) << message;
  EXPECT_EQ(pinner.state("batch-1"), before);
}

TEST(DomainPinningTest, SeveralVmsAreAllOrNothing) {
  InMemoryVmPinner pinner(4, 2);
  pinner.addDomain("a", 1, 0);
  pinner.addDomain("b", 1, 0);
  const DomainPinning beforeA = pinner.state("a");
  const DomainPinning beforeB = pinner.state("b");
  // "a" takes three changes (vCPU, emulator, memory); "b" fails at its emulator.
  pinner.failChange(4);
  auto changes = pinDomainsToIsland(pinner, island("pair", {2, 3}, {1}), {"a", "b"});
  ASSERT_FALSE(changes);
  EXPECT_NE(changes.error().message().find("VMs pinned before it were restored"), std::string::npos)
      << changes.error().message();
  EXPECT_EQ(pinner.state("a").vcpus, beforeA.vcpus);
  EXPECT_EQ(pinner.state("a").emulator, beforeA.emulator);
  EXPECT_EQ(pinner.state("b"), beforeB);
}

TEST(DomainPinningTest, RejectsAnIslandWithoutCpusOrNodes) {
  InMemoryVmPinner pinner(4, 1);
  pinner.addDomain("vm", 1, 0);
  EXPECT_FALSE(pinDomain(pinner, "vm", {}, {0}));
  EXPECT_FALSE(pinDomain(pinner, "vm", {1}, {}));
  EXPECT_EQ(pinner.changes(), 0u);
}

TEST(DomainPinningTest, CpusTheHostLacksAreRefusedAndRolledBack) {
  InMemoryVmPinner pinner(4, 1);
  pinner.addDomain("vm", 2, 0);
  const DomainPinning before = pinner.state("vm");
  auto change = pinDomain(pinner, "vm", {2, 9}, {0});
  ASSERT_FALSE(change);
  EXPECT_NE(change.error().message().find("'2,9'"), std::string::npos) << change.error().message();
  EXPECT_EQ(pinner.state("vm"), before);
}

}  // namespace
}  // namespace Atoll::numa
