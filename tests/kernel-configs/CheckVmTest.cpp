// In the test VM, whose kernel has every cgroup v2 controller Atoll needs:
// `atoll check --json` must report them present. The guest init points
// ATOLL_CLI at the atoll binary it shipped.
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace Atoll {
namespace {

constexpr const char* kCliVariable = "ATOLL_CLI";
constexpr std::string_view kControllersFeature = "cgroup2.controllers";

struct CommandOutput {
  std::string standardOutput;
  int exitStatus = -1;  // -1 when it did not exit normally
};

// Runs argv without a shell and collects its standard output.
CommandOutput runCommand(const std::vector<std::string>& argv) {
  CommandOutput out;
  int fds[2];
  if (::pipe(fds) != 0) return out;
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], STDOUT_FILENO);
    ::close(fds[0]);
    ::close(fds[1]);
    std::vector<char*> args;
    for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  char buffer[4096];
  for (ssize_t n; (n = ::read(fds[0], buffer, sizeof buffer)) > 0;) {
    out.standardOutput.append(buffer, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  if (pid > 0 && ::waitpid(pid, &status, 0) == pid && WIFEXITED(status)) {
    out.exitStatus = WEXITSTATUS(status);
  }
  return out;
}

TEST(CheckVmTest, ReportsCgroup2ControllersOk) {
  const char* cli = std::getenv(kCliVariable);
  if (cli == nullptr || *cli == '\0') {
    GTEST_SKIP() << kCliVariable << " is unset: this test runs in the test VM, whose init sets it";
  }
  ASSERT_EQ(::access(cli, X_OK), 0)
      << kCliVariable << "=" << cli << " is not executable: the atoll CLI was not shipped";
  CommandOutput check = runCommand({cli, "check", "--json"});
  ASSERT_NE(check.exitStatus, 127) << "could not run " << cli;
  auto report = nlohmann::json::parse(check.standardOutput, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(report.is_discarded())
      << cli << " check --json (exit " << check.exitStatus << ") printed no JSON:\n"
      << check.standardOutput;
  ASSERT_TRUE(report.is_object()) << check.standardOutput;

  utsname uts{};
  ASSERT_EQ(::uname(&uts), 0);
  EXPECT_EQ(report.value("kernel", ""), uts.release);

  auto features = report.find("features");
  ASSERT_TRUE(features != report.end() && features->is_array()) << check.standardOutput;
  const nlohmann::json* controllers = nullptr;
  for (const auto& feature : *features) {
    if (feature.value("name", "") == kControllersFeature) controllers = &feature;
  }
  ASSERT_NE(controllers, nullptr) << "no feature \"" << kControllersFeature << "\" in:\n"
                                  << check.standardOutput;
  EXPECT_EQ(controllers->value("status", ""), "ok")
      << "detail: " << controllers->value("detail", "")
      << "\nfix: " << controllers->value("fix", "");
}

}  // namespace
}  // namespace Atoll
