#include "bpf/collector/WorkloadRegistry.h"

#include <gtest/gtest.h>

namespace Atoll::telemetry {
namespace {

DiscoveredCgroup cg(uint64_t id, const std::string& path) {
  return {id, path, path, ""};
}

TEST(WorkloadRegistry, NewCgroupsAreBornOnce) {
  WorkloadRegistry registry;
  auto first = registry.reconcile({cg(10, "machine.slice/a"), cg(11, "machine.slice/b")});
  ASSERT_EQ(first.born.size(), 2u);
  EXPECT_NE(first.born[0].number, first.born[1].number);
  auto second = registry.reconcile({cg(10, "machine.slice/a"), cg(11, "machine.slice/b")});
  EXPECT_TRUE(second.born.empty());
  EXPECT_TRUE(second.ended.empty());
  EXPECT_EQ(registry.byCgroupId(10)->number, first.born[0].number);
}

TEST(WorkloadRegistry, VanishedCgroupEndsItsWorkload) {
  WorkloadRegistry registry;
  auto first = registry.reconcile({cg(10, "machine.slice/a"), cg(11, "machine.slice/b")});
  auto second = registry.reconcile({cg(11, "machine.slice/b")});
  ASSERT_EQ(second.ended.size(), 1u);
  EXPECT_EQ(second.ended[0].cgroup.cgroupId, 10u);
  EXPECT_FALSE(registry.byCgroupId(10));
}

TEST(WorkloadRegistry, ReusedIdUnderAnotherPathIsANewWorkload) {
  WorkloadRegistry registry;
  uint32_t old = registry.reconcile({cg(10, "machine.slice/a")}).born[0].number;
  auto next = registry.reconcile({cg(10, "machine.slice/z")});
  ASSERT_EQ(next.ended.size(), 1u);
  ASSERT_EQ(next.born.size(), 1u);
  EXPECT_EQ(next.ended[0].number, old);
  EXPECT_NE(next.born[0].number, old);
}

TEST(WorkloadRegistry, SameIdAndPathAfterRemovalIsANewWorkload) {
  // Removed and recreated between two discovery passes: id and path look the
  // same, but the kept descriptor saw the old cgroup die.
  WorkloadRegistry registry;
  uint32_t old = registry.reconcile({cg(10, "machine.slice/a")}).born[0].number;
  registry.markGone(old);
  auto next = registry.reconcile({cg(10, "machine.slice/a")});
  ASSERT_EQ(next.ended.size(), 1u);
  ASSERT_EQ(next.born.size(), 1u);
  EXPECT_EQ(next.ended[0].number, old);
  EXPECT_GT(next.born[0].number, old);
}

TEST(WorkloadRegistry, GoneAndNotRediscoveredEnds) {
  WorkloadRegistry registry;
  uint32_t old = registry.reconcile({cg(10, "a")}).born[0].number;
  registry.markGone(old);
  auto next = registry.reconcile({});
  ASSERT_EQ(next.ended.size(), 1u);
  EXPECT_TRUE(next.born.empty());
}

TEST(WorkloadRegistry, NumbersAreNeverReused) {
  WorkloadRegistry registry;
  uint32_t a = registry.reconcile({cg(10, "a")}).born[0].number;
  registry.reconcile({});
  uint32_t b = registry.reconcile({cg(10, "a")}).born[0].number;
  EXPECT_NE(a, b);
}

TEST(WorkloadRegistry, RenamedDomainKeepsItsNumber) {
  WorkloadRegistry registry;
  uint32_t a = registry.reconcile({{10, "m/a", "vm1", "uuid-1"}}).born[0].number;
  auto next = registry.reconcile({{10, "m/a", "vm1-renamed", "uuid-1"}});
  EXPECT_TRUE(next.born.empty());
  EXPECT_EQ(registry.byCgroupId(10)->number, a);
  EXPECT_EQ(registry.byCgroupId(10)->cgroup.name, "vm1-renamed");
}

TEST(Selectors, GlobsDoNotCrossSlashes) {
  EXPECT_TRUE(selectorMatches("machine.slice/*", "machine.slice/machine-qemu\\x2d1.scope"));
  EXPECT_FALSE(selectorMatches("machine.slice/*", "machine.slice/a/vcpu0"));
  EXPECT_FALSE(selectorMatches("machine.slice/*", "machine.slice"));
  EXPECT_TRUE(selectorMatches("kubepods/*/pod?", "kubepods/burstable/pod1"));
  EXPECT_FALSE(selectorMatches("kubepods/*/pod?", "kubepods/burstable/pod12"));
  EXPECT_TRUE(anySelectorMatches({"x/*", "vms/*"}, "vms/one"));
  EXPECT_FALSE(anySelectorMatches({}, "vms/one"));
}

}  // namespace
}  // namespace Atoll::telemetry
