// Workload-family selectors: parsing, cgroup globs on a fixture cgroup tree
// (directories with a cgroup.procs file, as cgroupfs has), libvirt name and
// metadata selectors on an in-memory pinner, and a selector that matches
// nothing as an error naming it.
#include "numa/IslandSelector.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "numa/LibvirtPinner.h"
#include "tests/numa/islands/InMemoryVmPinner.h"

namespace Atoll::numa {
namespace {

namespace fs = std::filesystem;

class CgroupTree : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("atoll-selector-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    group("", "");
    group("machine.slice", "");
    group("machine.slice/vm-a.scope", "101\n102\n");
    group("machine.slice/vm-a.scope/vcpu0", "103\n");
    group("machine.slice/vm-b.scope", "201\n");
    group("system.slice", "");
    group("system.slice/sshd.service", "301\n");
    group("atoll.slice", "");
    group("atoll.slice/db", "401\n");
  }
  void TearDown() override { fs::remove_all(root_); }

  void group(const std::string& path, const std::string& procs) {
    fs::create_directories(root_ / path);
    std::ofstream(root_ / path / "cgroup.procs") << procs;
  }
  std::string mount() const { return root_.string(); }

  fs::path root_;
};

TEST(IslandSelectorParseTest, ReadsEachKind) {
  auto bare = parseIslandSelector("machine.slice/*");
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->kind, SelectorKind::CgroupGlob);
  EXPECT_EQ(bare->pattern, "machine.slice/*");
  EXPECT_FALSE(bare->needsLibvirt());
  auto prefixed = parseIslandSelector("cgroup:/system.slice/*.service/");
  ASSERT_TRUE(prefixed);
  EXPECT_EQ(prefixed->pattern, "system.slice/*.service");
  auto name = parseIslandSelector("vm:inference-*");
  ASSERT_TRUE(name);
  EXPECT_EQ(name->kind, SelectorKind::DomainName);
  EXPECT_EQ(name->pattern, "inference-*");
  EXPECT_TRUE(name->needsLibvirt());
  auto tagged = parseIslandSelector("vm-metadata:https://example.org/family=inference");
  ASSERT_TRUE(tagged);
  EXPECT_EQ(tagged->kind, SelectorKind::DomainMetadata);
  EXPECT_EQ(tagged->pattern, "https://example.org/family");
  EXPECT_EQ(tagged->metadataText, std::optional<std::string>("inference"));
  auto present = parseIslandSelector("vm-metadata:urn:atoll:family");
  ASSERT_TRUE(present);
  EXPECT_EQ(present->pattern, "urn:atoll:family");
  EXPECT_FALSE(present->metadataText);
}

TEST(IslandSelectorParseTest, RejectsEmptyAndEscapingSelectorsNamingThem) {
  for (const char* bad :
       {"", "/", "vm:", "vm-metadata:", "../etc", "machine.slice/../x", "cgroup:a//b"}) {
    auto selector = parseIslandSelector(bad);
    ASSERT_FALSE(selector) << bad;
    const std::string expected = *bad == '\0' ? "needs a path" : std::string("'") + bad + "'";
    EXPECT_NE(selector.error().message().find(expected), std::string::npos)
        << selector.error().message();
  }
}

TEST_F(CgroupTree, GlobMatchesCgroupPathsOutsideTheManagedRoot) {
  auto matched = matchCgroups(mount(), "machine.slice/*", "atoll.slice");
  ASSERT_TRUE(matched) << matched.error().message();
  EXPECT_EQ(*matched,
            (std::vector<std::string>{"machine.slice/vm-a.scope", "machine.slice/vm-b.scope"}));
  auto everything = matchCgroups(mount(), "*", "atoll.slice");
  ASSERT_TRUE(everything);
  EXPECT_EQ(*everything, (std::vector<std::string>{"machine.slice", "system.slice"}));
  auto islands = matchCgroups(mount(), "atoll.slice/*", "atoll.slice");
  ASSERT_TRUE(islands);
  EXPECT_TRUE(islands->empty());
}

TEST_F(CgroupTree, ResolvesProcessesOfMatchedCgroupsAndTheirChildren) {
  auto selector = parseIslandSelector("machine.slice/vm-a*");
  ASSERT_TRUE(selector);
  auto members = resolveSelectors({*selector}, mount(), "atoll.slice", nullptr);
  ASSERT_TRUE(members) << members.error().message();
  ASSERT_EQ(members->processes.size(), 3u);
  EXPECT_EQ(members->processes[0].pid, 101);
  EXPECT_EQ(members->processes[0].cgroup, "machine.slice/vm-a.scope");
  EXPECT_EQ(members->processes[2].pid, 103);
  EXPECT_EQ(members->processes[2].cgroup, "machine.slice/vm-a.scope/vcpu0");
  EXPECT_TRUE(members->domains.empty());
}

TEST_F(CgroupTree, SelectorMatchingNothingIsAnErrorNamingIt) {
  auto typo = parseIslandSelector("machine.slcie/*");
  ASSERT_TRUE(typo);
  auto members = resolveSelectors({*typo}, mount(), "atoll.slice", nullptr);
  ASSERT_FALSE(members);
  EXPECT_NE(members.error().message().find("'machine.slcie/*'"), std::string::npos)
      << members.error().message();
  EXPECT_NE(members.error().message().find("no cgroup"), std::string::npos);

  testing::InMemoryVmPinner pinner(4, 1);
  pinner.addDomain("web-1", 1, 0);
  auto vm = parseIslandSelector("vm:db-*");
  ASSERT_TRUE(vm);
  auto domains = resolveSelectors({*vm}, mount(), "atoll.slice", &pinner);
  ASSERT_FALSE(domains);
  EXPECT_NE(domains.error().message().find("'vm:db-*'"), std::string::npos)
      << domains.error().message();
  auto withoutLibvirt = resolveSelectors({*vm}, mount(), "atoll.slice", nullptr);
  ASSERT_FALSE(withoutLibvirt);
  EXPECT_NE(withoutLibvirt.error().message().find("needs libvirt"), std::string::npos);
}

TEST(IslandSelectorDomainTest, MatchesDomainNamesAndMetadata) {
  testing::InMemoryVmPinner pinner(4, 1);
  const std::string family = "https://example.org/atoll/family";
  pinner.addDomain("inference-2", 1, 0, {{family, "inference"}});
  pinner.addDomain("inference-1", 1, 0, {{family, "inference"}});
  pinner.addDomain("db-1", 1, 0, {{family, "database"}});
  pinner.addDomain("scratch", 1, 0);
  auto byName = parseIslandSelector("vm:inference-*");
  ASSERT_TRUE(byName);
  auto named = matchDomains(pinner, *byName);
  ASSERT_TRUE(named);
  EXPECT_EQ(*named, (std::vector<std::string>{"inference-1", "inference-2"}));
  auto byValue = parseIslandSelector("vm-metadata:" + family + "=database");
  ASSERT_TRUE(byValue);
  auto valued = matchDomains(pinner, *byValue);
  ASSERT_TRUE(valued);
  EXPECT_EQ(*valued, (std::vector<std::string>{"db-1"}));
  auto byPresence = parseIslandSelector("vm-metadata:" + family);
  ASSERT_TRUE(byPresence);
  auto tagged = matchDomains(pinner, *byPresence);
  ASSERT_TRUE(tagged);
  EXPECT_EQ(tagged->size(), 3u);
  auto both = resolveSelectors({*byName, *byPresence}, "/nonexistent", "atoll.slice", &pinner);
  ASSERT_TRUE(both) << both.error().message();
  EXPECT_EQ(both->domains, (std::vector<std::string>{"inference-1", "inference-2", "db-1"}));
}

TEST(IslandSelectorDomainTest, ReadsMetadataElementText) {
  EXPECT_EQ(metadataElementText("<family xmlns=\"https://x\">inference</family>"), "inference");
  EXPECT_EQ(metadataElementText("  <a:f xmlns:a='u'>\n  db \n</a:f>\n"), "db");
  EXPECT_EQ(metadataElementText("<family xmlns=\"https://x\"/>"), "");
}

}  // namespace
}  // namespace Atoll::numa
