// In the test VM, whose kernel has every cgroup v2 controller Atoll needs:
// `atoll check --json` must report them present. The guest init points
// ATOLL_CLI at the atoll binary it shipped.
#include <sys/utsname.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/kernel-configs/CommandRunner.h"

namespace Atoll {
namespace {

constexpr const char* kCliVariable = "ATOLL_CLI";
constexpr std::string_view kControllersFeature = "cgroup2.controllers";

using test::CommandOutput;
using test::runCommand;

TEST(CheckVmTest, ReportsCgroup2ControllersOk) {
  const char* cli = std::getenv(kCliVariable);
  if (cli == nullptr || *cli == '\0') {
    GTEST_SKIP() << kCliVariable << " is unset: this test runs in the test VM, whose init sets it";
  }
  ASSERT_EQ(::access(cli, X_OK), 0)
      << kCliVariable << "=" << cli << " is not executable: the atoll CLI was not shipped";
  CommandOutput check = runCommand({cli, "check", "--json"});
  ASSERT_NE(check.exitStatus, 127) << "could not run " << cli;
  auto report = nlohmann::json::parse(check.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(report.is_discarded())
      << cli << " check --json (exit " << check.exitStatus << ") printed no JSON:\n"
      << check.out;
  ASSERT_TRUE(report.is_object()) << check.out;

  utsname uts{};
  ASSERT_EQ(::uname(&uts), 0);
  EXPECT_EQ(report.value("kernel", ""), uts.release);

  auto features = report.find("features");
  ASSERT_TRUE(features != report.end() && features->is_array()) << check.out;
  const nlohmann::json* controllers = nullptr;
  for (const auto& feature : *features) {
    if (feature.value("name", "") == kControllersFeature) controllers = &feature;
  }
  ASSERT_NE(controllers, nullptr) << "no feature \"" << kControllersFeature << "\" in:\n"
                                  << check.out;
  EXPECT_EQ(controllers->value("status", ""), "ok")
      << "detail: " << controllers->value("detail", "")
      << "\nfix: " << controllers->value("fix", "");
}

}  // namespace
}  // namespace Atoll
