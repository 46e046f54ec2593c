// The report model and its renderings: the fixed JSON shape other tools
// parse, the text table, and the exit-status rule (required and missing).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "kernel-configs/Report.h"

namespace Atoll::capability {
namespace {

Report sampleReport() {
  Report report;
  report.kernel = "6.1.0-test";
  report.features.push_back(Feature::ok("btf", true, "/sys/kernel/btf/vmlinux"));
  report.features.push_back(
      Feature::absent("cgroup2.controllers", true, "offers hugetlb", "boot with cgroup_no_v1=all"));
  report.features.push_back(
      Feature::absent("kernel_tls", false, "TCP_ULP tls: ENOENT", "CONFIG_TLS=m"));
  report.features.push_back(
      Feature::degraded("kernel_config", true, "recommended unmet", "CONFIG_SCHEDSTATS=y"));
  return report;
}

TEST(FeatureTest, AbsentIsMissingWhenRequiredAndDegradedWhenRecommended) {
  EXPECT_EQ(Feature::absent("a", true, "", "").status, FeatureStatus::Missing);
  EXPECT_EQ(Feature::absent("a", false, "", "").status, FeatureStatus::Degraded);
  EXPECT_EQ(Feature::ok("a", false, "").status, FeatureStatus::Ok);
  EXPECT_TRUE(Feature::ok("a", false, "").fix.empty());
  EXPECT_EQ(toString(FeatureStatus::Ok), "ok");
  EXPECT_EQ(toString(FeatureStatus::Missing), "missing");
  EXPECT_EQ(toString(FeatureStatus::Degraded), "degraded");
}

TEST(ReportTest, SummaryCountsEveryStatus) {
  Summary summary = sampleReport().summary();
  EXPECT_EQ(summary.ok, 1u);
  EXPECT_EQ(summary.missing, 1u);
  EXPECT_EQ(summary.degraded, 2u);
}

TEST(ReportTest, OnlyRequiredMissingFeaturesFailTheCheck) {
  Report report = sampleReport();
  EXPECT_EQ(report.missingRequired(), std::vector<std::string>{"cgroup2.controllers"});
  EXPECT_FALSE(report.requiredSatisfied());
  report.features[1] = Feature::ok("cgroup2.controllers", true, "all");
  EXPECT_TRUE(report.requiredSatisfied()) << "degraded features must not fail the check";
  // A recommended feature marked missing by hand still does not fail it.
  report.features.push_back(Feature{"x", FeatureStatus::Missing, false, "", ""});
  EXPECT_TRUE(report.requiredSatisfied());
}

TEST(ReportTest, JsonHasTheFixedShape) {
  auto json = nlohmann::json::parse(renderJson(sampleReport()));
  ASSERT_TRUE(json.is_object());
  EXPECT_EQ(json.size(), 3u);
  EXPECT_EQ(json.at("kernel"), "6.1.0-test");
  ASSERT_TRUE(json.at("features").is_array());
  ASSERT_EQ(json.at("features").size(), 4u);
  for (const auto& feature : json.at("features")) {
    EXPECT_EQ(feature.size(), 5u) << feature.dump();
    EXPECT_TRUE(feature.at("name").is_string());
    EXPECT_TRUE(feature.at("status").is_string());
    EXPECT_TRUE(feature.at("required").is_boolean());
    EXPECT_TRUE(feature.at("detail").is_string());
    EXPECT_TRUE(feature.at("fix").is_string());
  }
  const auto& controllers = json.at("features").at(1);
  EXPECT_EQ(controllers.at("name"), "cgroup2.controllers");
  EXPECT_EQ(controllers.at("status"), "missing");
  EXPECT_EQ(controllers.at("required"), true);
  EXPECT_EQ(controllers.at("detail"), "offers hugetlb");
  EXPECT_EQ(controllers.at("fix"), "boot with cgroup_no_v1=all");
  EXPECT_EQ(json.at("features").at(2).at("status"), "degraded");
  EXPECT_EQ(json.at("features").at(2).at("required"), false);
  const auto& summary = json.at("summary");
  EXPECT_EQ(summary.size(), 3u);
  EXPECT_EQ(summary.at("ok"), 1);
  EXPECT_EQ(summary.at("missing"), 1);
  EXPECT_EQ(summary.at("degraded"), 2);
}

TEST(ReportTest, JsonSurvivesQuotesNewlinesAndInvalidUtf8) {
  Report report;
  report.kernel = "k";
  report.features.push_back(Feature::absent("x", true, "said \"no\"\nthen \xff\xfe", "fix\t1"));
  auto json = nlohmann::json::parse(renderJson(report));
  std::string detail = json.at("features").at(0).at("detail");
  EXPECT_EQ(detail.substr(0, 17), "said \"no\"\nthen \xef\xbf");
  EXPECT_EQ(json.at("features").at(0).at("fix"), "fix\t1");
}

TEST(ReportTest, TextShowsEveryFeatureFixesForProblemsAndTheMissingRequired) {
  std::string text = renderText(sampleReport());
  EXPECT_NE(text.find("kernel 6.1.0-test"), std::string::npos);
  for (const char* name : {"btf", "cgroup2.controllers", "kernel_tls", "kernel_config"})
    EXPECT_NE(text.find(name), std::string::npos) << name;
  EXPECT_NE(text.find("fix: boot with cgroup_no_v1=all"), std::string::npos);
  EXPECT_NE(text.find("fix: CONFIG_TLS=m"), std::string::npos);
  EXPECT_EQ(text.find("fix: /sys"), std::string::npos);
  EXPECT_NE(text.find("1 ok, 1 missing, 2 degraded"), std::string::npos);
  EXPECT_NE(text.find("required features missing: cgroup2.controllers"), std::string::npos);
}

TEST(ReportTest, TextSaysSoWhenEverythingRequiredIsPresent) {
  Report report;
  report.kernel = "k";
  report.features.push_back(Feature::ok("btf", true, "fine"));
  std::string text = renderText(report);
  EXPECT_NE(text.find("every required feature is present"), std::string::npos);
  EXPECT_EQ(text.find("fix:"), std::string::npos);
}

}  // namespace
}  // namespace Atoll::capability
