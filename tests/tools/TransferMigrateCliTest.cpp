// `atoll transfer migrate` refuses bad options before it does anything: each
// refusal names the option's value, exits with the usage code, and never
// reaches the QMP socket; `migration start` refuses its own before it asks
// atolld. `transfer send` and `serve` do the same with --cpus, before they
// connect or listen.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "tests/runtime/TestSupport.h"
#include "tests/tools/RunAtoll.h"

namespace Atoll {
namespace {

using test::runAtoll;

TEST(TransferMigrateCli, RefusesBadOptionsNamingTheValue) {
  test::TempDir dir;
  // Does not exist: a refusal that got as far as QEMU would say so.
  const std::string base = "transfer migrate --qmp " + dir.file("absent.qmp");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {" --to nohost", "'nohost'"},
      {" --to 127.0.0.1:99999", "'127.0.0.1:99999'"},
      {" --to 127.0.0.1:0", "'127.0.0.1:0'"},
      {" --to 127.0.0.1:7477 --channels 0", "--channels 0"},
      {" --to 127.0.0.1:7477 --channels 65", "--channels 65"},
      {" --to 127.0.0.1:7477 --channels -3", "--channels -3"},
      {" --to 127.0.0.1:7477 --timeout -1", "--timeout -1"},
      {" --to 127.0.0.1:7477 --timeout inf", "'inf'"},
      {" --to 127.0.0.1:7477 --timeout 1e300", "--timeout 1e+300"},
      {" --to 127.0.0.1:7477 --channels 010", "'010'"},
      {" --to 127.0.0.1:7477 --bwlimit fast", "'fast'"},
      {" --to 127.0.0.1:7477 --bwlimit 0", "--bwlimit '0'"},
      {" --to 127.0.0.1:7477 --downtime-limit 0", "--downtime-limit value '0'"},
      {" --to 127.0.0.1:7477 --downtime-limit -50", "'-50'"},
      {" --to 127.0.0.1:7477 --downtime-limit 2000001", "'2000001'"},
      {" --to 127.0.0.1:7477 --downtime-limit 99999999999999999999", "'99999999999999999999'"},
      {" --to 127.0.0.1:7477 --downtime-limit 50.5", "'50.5'"},
      {" --to 127.0.0.1:7477 --downtime-limit 50ms", "'50ms'"},
  };
  for (const auto& [options, named] : cases) {
    auto result = runAtoll(base + options);
    EXPECT_EQ(result.exitCode, 2) << options << ": " << result.err;
    EXPECT_NE(result.err.find(named), std::string::npos) << options << ": " << result.err;
    EXPECT_EQ(result.err.find("QMP"), std::string::npos) << options << ": " << result.err;
  }
}

// `atoll migration start` checks its QEMU options before it asks atolld:
// the socket named here does not exist, so a refusal that got as far as the
// daemon would name it.
TEST(MigrationStartCli, RefusesBadOptionsNamingTheValue) {
  test::TempDir dir;
  const std::string base = "migration start --qmp " + dir.file("vm.qmp") + " --socket " +
                           dir.file("absent.sock") + " --to 127.0.0.1:7477";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {" --bwlimit 0", "--bwlimit '0'"},    {" --downtime-limit 0", "--downtime-limit value '0'"},
      {" --downtime-limit -50", "'-50'"},   {" --downtime-limit 2000001", "'2000001'"},
      {" --downtime-limit 50.5", "'50.5'"}, {" --downtime-limit soon", "'soon'"},
  };
  for (const auto& [options, named] : cases) {
    auto result = runAtoll(base + options);
    EXPECT_EQ(result.exitCode, 2) << options << ": " << result.err;
    EXPECT_NE(result.err.find(named), std::string::npos) << options << ": " << result.err;
    EXPECT_EQ(result.err.find("absent.sock"), std::string::npos) << options << ": " << result.err;
  }
  auto help = runAtoll("migration start --help");
  EXPECT_EQ(help.exitCode, 0);
  EXPECT_NE(help.out.find("--downtime-limit"), std::string::npos) << help.out;
}

TEST(TransferMigrateCli, MissingQmpSocketIsNamed) {
  test::TempDir dir;
  auto result =
      runAtoll("transfer migrate --qmp " + dir.file("absent.qmp") + " --to 127.0.0.1:7477");
  EXPECT_EQ(result.exitCode, 3) << result.err;
  EXPECT_NE(result.err.find("no QMP socket at " + dir.file("absent.qmp")), std::string::npos)
      << result.err;
}

TEST(TransferMigrateCli, HelpSaysWhatTheDestinationNeeds) {
  test::TempDir dir;
  std::string command =
      std::string(ATOLL_CLI_PATH) + " transfer migrate --help >" + dir.file("out") + " 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0);
  std::string help = test::readTextFile(dir.file("out"));
  for (const char* text : {"--qmp", "--to", "--channels", "multifd", "-incoming unix:PATH",
                           "--tunnel-to", "--json", "--timeout", "--bwlimit", "--downtime-limit",
                           "plaintext", "--relay", "--tunnel-qmp", "-incoming defer"})
    EXPECT_NE(help.find(text), std::string::npos) << text << " not in:\n" << help;
  auto page = runAtoll("manpage --output " + dir.file("atoll.1"));
  EXPECT_EQ(page.exitCode, 0) << page.err;
  EXPECT_NE(test::readTextFile(dir.file("atoll.1")).find(".SS \"atoll transfer migrate\""),
            std::string::npos);
}

TEST(TransferCpusCli, SendAndServeRefuseCpusTheyCannotUse) {
  test::TempDir dir;
  // Neither exists nor listens: a refusal that got past --cpus would say so.
  const std::string send = "transfer send " + dir.file("absent.img") + " 127.0.0.1:9 --cpus ";
  const std::string serve =
      "transfer serve --dir " + dir.file("staging") + " --listen 127.0.0.1:9 --cpus ";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {send + "0-x", "'0-x'"},  {send + "3-1", "'3-1'"},
      {send + "4000", "4000"},  // beyond any cpu_set_t: no host allows it
      {serve + "0-x", "'0-x'"}, {serve + "4000", "4000"},
  };
  for (const auto& [command, named] : cases) {
    auto result = runAtoll(command);
    EXPECT_EQ(result.exitCode, 2) << command << ": " << result.err;
    EXPECT_NE(result.err.find("--cpus"), std::string::npos) << command << ": " << result.err;
    EXPECT_NE(result.err.find(named), std::string::npos) << command << ": " << result.err;
    EXPECT_EQ(result.err.find("absent.img"), std::string::npos) << command << ": " << result.err;
    EXPECT_EQ(result.err.find("serving"), std::string::npos) << command << ": " << result.err;
  }
  EXPECT_FALSE(std::filesystem::exists(dir.file("staging")));
  for (const char* verb : {"send", "serve"}) {
    auto help = runAtoll(std::string("transfer ") + verb + " --help");
    EXPECT_EQ(help.exitCode, 0) << verb;
    EXPECT_NE(help.out.find("--cpus"), std::string::npos) << verb << ":\n" << help.out;
    EXPECT_NE(help.out.find("fewest running"), std::string::npos) << verb << ":\n" << help.out;
  }
}

}  // namespace
}  // namespace Atoll
