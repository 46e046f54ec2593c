// The `atoll` binary against a real atolld: status, state verbs, --json,
// exit codes, messages when the daemon is absent, generated docs.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include "tests/runtime/TestSupport.h"

namespace Atoll {
namespace {

struct CommandResult {
  int exitCode = -1;
  std::string out;
  std::string err;
};

CommandResult runAtoll(const std::string& args) {
  test::TempDir dir;
  std::string command =
      std::string(ATOLL_CLI_PATH) + " " + args + " >" + dir.file("out") + " 2>" + dir.file("err");
  int status = std::system(command.c_str());
  CommandResult result;
  result.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.out = test::readTextFile(dir.file("out"));
  result.err = test::readTextFile(dir.file("err"));
  return result;
}

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string failure;
    daemon = test::DaemonProcess::start(dir.path(),
                                        {"--socket", dir.file("atolld.sock"), "--state-dir",
                                         dir.file("state"), "--metrics-listen", "127.0.0.1:0"},
                                        &failure);
    ASSERT_TRUE(daemon) << failure;
    socket = " --socket " + dir.file("atolld.sock");
  }
  test::TempDir dir;
  std::unique_ptr<test::DaemonProcess> daemon;
  std::string socket;
};

TEST_F(Cli, StatusJsonAnswers) {
  auto result = runAtoll("status --json" + socket);
  ASSERT_EQ(result.exitCode, 0) << result.err;
  auto status = nlohmann::json::parse(result.out, nullptr, false);
  ASSERT_TRUE(status.is_object()) << result.out;
  EXPECT_EQ(status["version"], ATOLL_VERSION);
  EXPECT_EQ(status["pid"], daemon->pid());
  EXPECT_EQ(status["config"]["source"], "built-in defaults");
  EXPECT_EQ(status["subsystems"].size(), 2u);
}

TEST_F(Cli, StatusForHumans) {
  auto result = runAtoll("status" + socket);
  ASSERT_EQ(result.exitCode, 0) << result.err;
  for (const char* expected : {"atolld " ATOLL_VERSION, "config:     built-in defaults",
                               "tick:       every 1000 ms", "housekeeping", "self-metrics"})
    EXPECT_NE(result.out.find(expected), std::string::npos) << expected << "\n" << result.out;
}

TEST_F(Cli, StateVerbsRoundTrip) {
  ASSERT_EQ(runAtoll("state set vm/a '{\"island\": \"latency\"}'" + socket).exitCode, 0);
  auto get = runAtoll("state get vm/a --json" + socket);
  ASSERT_EQ(get.exitCode, 0) << get.err;
  EXPECT_EQ(nlohmann::json::parse(get.out)["value"]["island"], "latency");
  auto list = runAtoll("state list" + socket);
  EXPECT_NE(list.out.find("vm/a = {\"island\":\"latency\"}"), std::string::npos) << list.out;
  EXPECT_EQ(runAtoll("state delete vm/a" + socket).exitCode, 0);
  auto missing = runAtoll("state get vm/a" + socket);
  EXPECT_EQ(missing.exitCode, 1);
  EXPECT_NE(missing.err.find("no desired key 'vm/a'"), std::string::npos) << missing.err;
  auto notJson = runAtoll("state set vm/a latency" + socket);
  EXPECT_EQ(notJson.exitCode, 2);
  EXPECT_NE(notJson.err.find("'\"latency\"'"), std::string::npos) << notJson.err;
  auto badKey = runAtoll("state set ../x 1 --json" + socket);
  EXPECT_EQ(badKey.exitCode, 1);
  EXPECT_NE(nlohmann::json::parse(badKey.out)["error"].get<std::string>().find("segments"),
            std::string::npos);
}

TEST(CliWithoutDaemon, SaysTheDaemonIsNotRunning) {
  test::TempDir dir;
  auto result = runAtoll("status --socket " + dir.file("none.sock"));
  EXPECT_EQ(result.exitCode, 3);
  EXPECT_NE(result.err.find("atolld is not running"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find(dir.file("none.sock")), std::string::npos) << result.err;
  auto json = runAtoll("status --json --socket " + dir.file("none.sock"));
  EXPECT_EQ(json.exitCode, 3);
  EXPECT_EQ(nlohmann::json::parse(json.out)["exit_code"], 3);
}

TEST(CliWithoutDaemon, HelpPerVerbAndUsageErrors) {
  auto help = runAtoll("status --help");
  EXPECT_EQ(help.exitCode, 0);
  EXPECT_NE(help.out.find("--json"), std::string::npos);
  EXPECT_NE(help.out.find("--socket"), std::string::npos);
  EXPECT_EQ(runAtoll("status --no-such-flag").exitCode, 2);
  EXPECT_EQ(runAtoll("completion zsh").exitCode, 2);
}

TEST(CliWithoutDaemon, GeneratesCompletionAndManPageFromItsOwnVerbs) {
  auto completion = runAtoll("completion bash");
  ASSERT_EQ(completion.exitCode, 0);
  for (const char* verb :
       {"'atoll/status'", "'atoll/state/set'", "'atoll/check'", "complete -F _atoll atoll"})
    EXPECT_NE(completion.out.find(verb), std::string::npos) << verb;
  auto page = runAtoll("manpage");
  ASSERT_EQ(page.exitCode, 0);
  EXPECT_NE(page.out.find(".SS \"atoll status\""), std::string::npos);
  EXPECT_NE(page.out.find(".SS \"atoll state set\""), std::string::npos);
  auto wrapped = runAtoll("manpage --json");
  EXPECT_EQ(nlohmann::json::parse(wrapped.out)["text"], page.out);
}

}  // namespace
}  // namespace Atoll
