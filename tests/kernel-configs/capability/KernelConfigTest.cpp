// atoll.config and kernel .config parsing, and their comparison: pure logic
// on text, including the fragment embedded in the binary.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "kernel-configs/AtollConfigFragment.h"
#include "kernel-configs/KernelConfig.h"
#include "kernel-configs/KernelConfigProbe.h"

namespace Atoll::capability {
namespace {

const std::string kSource = "test.config";

std::map<std::string, FragmentOption> byName(const std::vector<FragmentOption>& options) {
  std::map<std::string, FragmentOption> out;
  for (const auto& option : options) out.emplace(option.name, option);
  return out;
}

TEST(FragmentTest, EmbeddedFragmentIsTheFileInTheSourceTree) {
  std::ifstream in(std::string(ATOLL_SOURCE_DIR) + "/kernel-configs/atoll.config");
  ASSERT_TRUE(in) << "cannot open kernel-configs/atoll.config";
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(atollConfigFragment(), text.str());
}

TEST(FragmentTest, EmbeddedFragmentParsesWithEveryOptionExplained) {
  auto options = parseFragment(atollConfigFragment(), std::string(kAtollConfigFragmentName));
  ASSERT_TRUE(options) << options.error().message();
  EXPECT_GE(options->size(), 20u);
  for (const auto& option : *options) EXPECT_GE(option.why.size(), 10u) << option.name;
  auto all = byName(*options);
  for (const char* required :
       {"CONFIG_DEBUG_INFO_BTF", "CONFIG_BPF_SYSCALL", "CONFIG_BPF_JIT", "CONFIG_CGROUP_BPF",
        "CONFIG_CGROUPS", "CONFIG_CPUSETS", "CONFIG_CGROUP_SCHED", "CONFIG_MEMCG",
        "CONFIG_BLK_CGROUP", "CONFIG_NUMA", "CONFIG_IO_URING", "CONFIG_USERFAULTFD", "CONFIG_PSI",
        "CONFIG_SCHED_INFO"}) {
    ASSERT_TRUE(all.contains(required)) << required;
    EXPECT_EQ(all.at(required).requirement, Requirement::Required) << required;
    EXPECT_EQ(all.at(required).value, "y") << required;
  }
  for (const char* recommended :
       {"CONFIG_TLS", "CONFIG_MEM_SOFT_DIRTY", "CONFIG_PTE_MARKER_UFFD_WP", "CONFIG_SCHEDSTATS"}) {
    ASSERT_TRUE(all.contains(recommended)) << recommended;
    EXPECT_EQ(all.at(recommended).requirement, Requirement::Recommended) << recommended;
  }
  EXPECT_EQ(all.at("CONFIG_TLS").value, "m");
  EXPECT_EQ(all.at("CONFIG_PSI_DEFAULT_DISABLED").value, "n");
}

TEST(FragmentTest, ParsesAnnotationsValuesAndLineNumbers) {
  auto options = parseFragment(
      "# header comment\n"
      "\n"
      "# required: the bpf() system call\n"
      "CONFIG_BPF_SYSCALL=y\n"
      "# recommended: kernel TLS for migration streams\n"
      "CONFIG_TLS=m\n"
      "# recommended:   PSI without a boot parameter  \n"
      "# CONFIG_PSI_DEFAULT_DISABLED is not set\n"
      "# required: a literal value\n"
      "CONFIG_NR_CPUS=64\n",
      kSource);
  ASSERT_TRUE(options) << options.error().message();
  ASSERT_EQ(options->size(), 4u);
  EXPECT_EQ((*options)[0].name, "CONFIG_BPF_SYSCALL");
  EXPECT_EQ((*options)[0].value, "y");
  EXPECT_EQ((*options)[0].requirement, Requirement::Required);
  EXPECT_EQ((*options)[0].why, "the bpf() system call");
  EXPECT_EQ((*options)[0].line, 4);
  EXPECT_EQ((*options)[1].requirement, Requirement::Recommended);
  EXPECT_EQ((*options)[1].value, "m");
  EXPECT_EQ((*options)[2].name, "CONFIG_PSI_DEFAULT_DISABLED");
  EXPECT_EQ((*options)[2].value, "n");
  EXPECT_EQ((*options)[2].why, "PSI without a boot parameter");
  EXPECT_EQ((*options)[3].value, "64");
}

struct BadFragment {
  const char* text;
  const char* expectedInMessage;
};

class BadFragmentTest : public testing::TestWithParam<BadFragment> {};

TEST_P(BadFragmentTest, IsRejectedWithAMessageNamingTheProblem) {
  auto options = parseFragment(GetParam().text, kSource);
  ASSERT_FALSE(options) << GetParam().text;
  std::string message = options.error().message();
  EXPECT_NE(message.find(kSource), std::string::npos) << message;
  EXPECT_NE(message.find(GetParam().expectedInMessage), std::string::npos) << message;
}

INSTANTIATE_TEST_SUITE_P(
    Fragments, BadFragmentTest,
    testing::Values(BadFragment{"CONFIG_A=y\n", "line 1: CONFIG_A has no '# required:'"},
                    BadFragment{"# required: a\nCONFIG_A=y\n# required: again\nCONFIG_A=m\n",
                                "line 4: CONFIG_A appears twice"},
                    BadFragment{"# required: a\n\nCONFIG_A=y\n", "must be followed directly"},
                    BadFragment{"# required: a\n# recommended: b\nCONFIG_A=y\n",
                                "annotation follows the annotation on line 1"},
                    BadFragment{"# required:\nCONFIG_A=y\n", "line 1: annotation without a reason"},
                    BadFragment{"# required: a\nCONFIG_A=y\nnonsense here\n", "line 3: expected"},
                    BadFragment{"# required: a\nconfig_a=y\n", "line 2: expected"},
                    BadFragment{"# required: a\nCONFIG_A=\n", "line 2: expected"},
                    BadFragment{"# required: dangling\n",
                                "the annotation on line 1 has no option"}));

TEST(KernelConfigTest, ParsesValuesUnsetOptionsAndComments) {
  auto config = parseKernelConfig(
      "#\n"
      "# Automatically generated file; DO NOT EDIT.\n"
      "#\n"
      "CONFIG_BPF=y\n"
      "CONFIG_TLS=m\n"
      "# CONFIG_MEM_SOFT_DIRTY is not set\n"
      "CONFIG_LOCALVERSION=\"-atoll\"\n"
      "CONFIG_NR_CPUS=8192\n"
      "\n",
      kSource);
  ASSERT_TRUE(config) << config.error().message();
  EXPECT_EQ(config->size(), 5u);
  EXPECT_EQ(config->at("CONFIG_BPF"), "y");
  EXPECT_EQ(config->at("CONFIG_TLS"), "m");
  EXPECT_EQ(config->at("CONFIG_MEM_SOFT_DIRTY"), "n");
  EXPECT_EQ(config->at("CONFIG_LOCALVERSION"), "\"-atoll\"");
  EXPECT_EQ(config->at("CONFIG_NR_CPUS"), "8192");
}

TEST(KernelConfigTest, RejectsTextThatIsNotAConfig) {
  auto garbage = parseKernelConfig("CONFIG_BPF=y\n\x1f\x8b binary\n", kSource);
  ASSERT_FALSE(garbage);
  EXPECT_NE(garbage.error().message().find("line 2"), std::string::npos)
      << garbage.error().message();
  auto empty = parseKernelConfig("# nothing\n", kSource);
  ASSERT_FALSE(empty);
  EXPECT_NE(empty.error().message().find("no CONFIG_ options"), std::string::npos);
}

TEST(KernelConfigTest, OptionSatisfiedFollowsKconfigMeaning) {
  EXPECT_TRUE(optionSatisfied("y", "y"));
  EXPECT_FALSE(optionSatisfied("y", "m"));
  EXPECT_FALSE(optionSatisfied("y", "n"));
  EXPECT_FALSE(optionSatisfied("y", std::nullopt));
  EXPECT_TRUE(optionSatisfied("m", "m"));
  EXPECT_TRUE(optionSatisfied("m", "y"));
  EXPECT_FALSE(optionSatisfied("m", "n"));
  EXPECT_FALSE(optionSatisfied("m", std::nullopt));
  EXPECT_TRUE(optionSatisfied("n", "n"));
  EXPECT_TRUE(optionSatisfied("n", std::nullopt));
  EXPECT_FALSE(optionSatisfied("n", "y"));
  EXPECT_TRUE(optionSatisfied("64", "64"));
  EXPECT_FALSE(optionSatisfied("64", "32"));
}

TEST(KernelConfigTest, ComparisonSeparatesRequiredFromRecommended) {
  auto fragment = parseFragment(
      "# required: r1\nCONFIG_BPF_SYSCALL=y\n"
      "# required: r2\nCONFIG_IO_URING=y\n"
      "# recommended: c1\nCONFIG_TLS=m\n"
      "# recommended: c2\n# CONFIG_PSI_DEFAULT_DISABLED is not set\n"
      "# recommended: c3\nCONFIG_MEM_SOFT_DIRTY=y\n",
      kSource);
  ASSERT_TRUE(fragment) << fragment.error().message();
  auto kernel = parseKernelConfig(
      "CONFIG_BPF_SYSCALL=y\n"
      "CONFIG_IO_URING=m\n"
      "CONFIG_TLS=y\n"
      "CONFIG_PSI_DEFAULT_DISABLED=y\n",
      kSource);
  ASSERT_TRUE(kernel) << kernel.error().message();
  ConfigComparison comparison = compareConfig(*fragment, *kernel);
  EXPECT_EQ(comparison.checked, 5u);
  ASSERT_EQ(comparison.requiredUnmet.size(), 1u);
  EXPECT_EQ(comparison.requiredUnmet[0].describe(), "CONFIG_IO_URING (want y, have m)");
  ASSERT_EQ(comparison.recommendedUnmet.size(), 2u);
  EXPECT_EQ(comparison.recommendedUnmet[0].describe(),
            "CONFIG_PSI_DEFAULT_DISABLED (want not set, have y)");
  EXPECT_EQ(comparison.recommendedUnmet[1].describe(),
            "CONFIG_MEM_SOFT_DIRTY (want y, have not set)");
}

TEST(KernelConfigTest, VerdictIsMissingDegradedOrOk) {
  FragmentOption required{"CONFIG_IO_URING", "y", Requirement::Required, "why", 2};
  FragmentOption recommended{"CONFIG_TLS", "m", Requirement::Recommended, "why", 4};

  ConfigComparison bad;
  bad.checked = 2;
  bad.requiredUnmet.push_back({required, std::nullopt});
  bad.recommendedUnmet.push_back({recommended, "n"});
  Feature missing = assessKernelConfig(bad, "/proc/config.gz");
  EXPECT_EQ(missing.name, "kernel_config");
  EXPECT_TRUE(missing.required);
  EXPECT_EQ(missing.status, FeatureStatus::Missing);
  EXPECT_NE(missing.detail.find("CONFIG_IO_URING (want y, have not set)"), std::string::npos);
  EXPECT_NE(missing.detail.find("CONFIG_TLS (want m or y, have not set)"), std::string::npos);
  EXPECT_NE(missing.detail.find("/proc/config.gz"), std::string::npos);
  EXPECT_NE(missing.fix.find("CONFIG_IO_URING=y"), std::string::npos);

  ConfigComparison soft;
  soft.checked = 2;
  soft.recommendedUnmet.push_back({recommended, std::nullopt});
  Feature degraded = assessKernelConfig(soft, "/boot/config-6.1.0");
  EXPECT_EQ(degraded.status, FeatureStatus::Degraded);
  EXPECT_NE(degraded.fix.find("CONFIG_TLS=m"), std::string::npos);

  ConfigComparison good;
  good.checked = 2;
  Feature fine = assessKernelConfig(good, "/boot/config-6.1.0");
  EXPECT_EQ(fine.status, FeatureStatus::Ok);
  EXPECT_TRUE(fine.fix.empty());
}

}  // namespace
}  // namespace Atoll::capability
