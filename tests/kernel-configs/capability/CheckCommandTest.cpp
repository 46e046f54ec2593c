// The built `atoll check` binary: the fixed JSON shape, the text table, and
// an exit status that follows the presence of missing required features.
#include <sys/utsname.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "kernel-configs/CapabilityCheck.h"
#include "tests/kernel-configs/CommandRunner.h"

namespace Atoll::capability {
namespace {

constexpr const char* kCli = ATOLL_CLI_PATH;

using test::CommandOutput;
using test::runCommand;

class CheckCommandTest : public testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "atoll check probes BPF and cgroups: needs root";
  }
};

TEST_F(CheckCommandTest, JsonHasTheFixedShapeAndTheExitStatusFollowsIt) {
  CommandOutput check = runCommand({kCli, "check", "--json", "--libvirt-timeout-ms", "1000"});
  ASSERT_NE(check.exitStatus, 127) << "could not run " << kCli;
  auto report = nlohmann::json::parse(check.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(report.is_discarded()) << "not JSON:\n" << check.out << check.err;
  ASSERT_TRUE(report.is_object());
  // kernel, features, summary, and the telemetry signals the CLI adds.
  EXPECT_EQ(report.size(), 4u) << report.dump();

  utsname uts{};
  ASSERT_EQ(::uname(&uts), 0);
  EXPECT_EQ(report.at("kernel"), uts.release);

  const auto& features = report.at("features");
  ASSERT_TRUE(features.is_array());
  ASSERT_EQ(features.size(), kFeatureNames.size());
  const std::set<std::string> statuses = {"ok", "missing", "degraded"};
  std::size_t ok = 0, missing = 0, degraded = 0;
  bool requiredMissing = false;
  for (std::size_t i = 0; i < features.size(); ++i) {
    const auto& feature = features[i];
    ASSERT_TRUE(feature.is_object());
    EXPECT_EQ(feature.size(), 5u) << feature.dump();
    EXPECT_EQ(feature.at("name"), std::string(kFeatureNames[i]));
    ASSERT_TRUE(feature.at("status").is_string());
    std::string status = feature.at("status");
    EXPECT_TRUE(statuses.contains(status)) << status;
    ASSERT_TRUE(feature.at("required").is_boolean());
    EXPECT_TRUE(feature.at("detail").is_string());
    EXPECT_TRUE(feature.at("fix").is_string());
    ok += status == "ok";
    missing += status == "missing";
    degraded += status == "degraded";
    if (status == "missing" && feature.at("required").get<bool>()) requiredMissing = true;
  }
  const auto& summary = report.at("summary");
  EXPECT_EQ(summary.size(), 3u);
  EXPECT_EQ(summary.at("ok"), ok);
  EXPECT_EQ(summary.at("missing"), missing);
  EXPECT_EQ(summary.at("degraded"), degraded);
  EXPECT_EQ(check.exitStatus, requiredMissing ? 1 : 0) << check.out;

  // One entry per telemetry signal; a missing one says why and never changes
  // the exit status.
  const auto& signals = report.at("telemetry_signals");
  ASSERT_TRUE(signals.is_array());
  EXPECT_FALSE(signals.empty());
  for (const auto& signal : signals) {
    ASSERT_TRUE(signal.is_object()) << signal.dump();
    EXPECT_TRUE(signal.at("signal").is_string()) << signal.dump();
    EXPECT_TRUE(signal.at("source").is_string()) << signal.dump();
    ASSERT_TRUE(signal.at("available").is_boolean()) << signal.dump();
    if (signal.at("available").get<bool>())
      EXPECT_TRUE(signal.at("reason").is_null()) << signal.dump();
    else
      EXPECT_TRUE(signal.at("reason").is_string()) << signal.dump();
  }
}

TEST_F(CheckCommandTest, TextTableListsEveryFeatureWithTheSameExitStatus) {
  CommandOutput json = runCommand({kCli, "check", "--json", "--libvirt-timeout-ms", "1000"});
  CommandOutput text = runCommand({kCli, "check", "--libvirt-timeout-ms", "1000"});
  EXPECT_EQ(text.exitStatus, json.exitStatus);
  EXPECT_NE(text.out.find("FEATURE"), std::string::npos) << text.out;
  for (auto name : kFeatureNames)
    EXPECT_NE(text.out.find(std::string(name) + " "), std::string::npos) << name;
  bool failed = text.exitStatus == 1;
  EXPECT_EQ(text.out.find("required features missing:") != std::string::npos, failed) << text.out;
}

TEST(CheckCommandUsageTest, OutOfRangeTimeoutIsRefusedNamingTheValue) {
  CommandOutput check = runCommand({kCli, "check", "--libvirt-timeout-ms", "0"});
  EXPECT_NE(check.exitStatus, 0);
  EXPECT_NE(check.exitStatus, 1) << "a usage error must not read as a host verdict";
  EXPECT_NE(check.err.find("--libvirt-timeout-ms"), std::string::npos) << check.err;
  EXPECT_NE(check.err.find("0"), std::string::npos) << check.err;
  EXPECT_TRUE(check.out.empty()) << check.out;
}

}  // namespace
}  // namespace Atoll::capability
