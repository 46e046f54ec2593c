#include <gtest/gtest.h>

#include "runtime/Config.h"
#include "runtime/SubsystemCatalog.h"
#include "tests/runtime/ConfigErrors.h"
#include "tests/runtime/TestSupport.h"

namespace Atoll {
namespace {

using test::errorsOf;
using test::findError;

TEST(Config, EmptyFileGivesBuiltInDefaults) {
  auto parsed = parseConfig("", "empty.toml");
  ASSERT_TRUE(parsed.ok()) << errorsOf(parsed);
  DaemonConfig defaults = defaultConfig();
  EXPECT_EQ(parsed.config.tick, defaults.tick);
  EXPECT_EQ(parsed.config.socketPath, "/run/atoll/atolld.sock");
  EXPECT_EQ(parsed.config.metricsListen.toString(), "127.0.0.1:9464");
  EXPECT_EQ(parsed.config.source, "empty.toml");
  EXPECT_EQ(parsed.config.subsystems.size(), kSubsystemCatalog.size());
  EXPECT_EQ(defaults.source, "built-in defaults");
}

TEST(Config, ShippedExampleIsValidAndMatchesTheDefaults) {
  auto parsed = loadConfigFile(std::string(ATOLL_SOURCE_DIR) + "/runtime/atolld.example.toml");
  ASSERT_TRUE(parsed.ok()) << errorsOf(parsed);
  DaemonConfig d = defaultConfig();
  const DaemonConfig& c = parsed.config;
  EXPECT_EQ(c.tick, d.tick);
  EXPECT_EQ(c.drainTimeout, d.drainTimeout);
  EXPECT_EQ(c.logLevel, d.logLevel);
  EXPECT_EQ(c.socketPath, d.socketPath);
  EXPECT_EQ(c.socketGroup, d.socketGroup);
  EXPECT_EQ(c.maxBodyBytes, d.maxBodyBytes);
  EXPECT_EQ(c.requestTimeout, d.requestTimeout);
  EXPECT_EQ(c.apiThreads, d.apiThreads);
  EXPECT_EQ(c.metricsEnabled, d.metricsEnabled);
  EXPECT_EQ(c.metricsListen, d.metricsListen);
  EXPECT_EQ(c.stateDirectory, d.stateDirectory);
  EXPECT_EQ(c.compactJournalBytes, d.compactJournalBytes);
  for (const auto& [name, settings] : d.subsystems)
    EXPECT_EQ(c.subsystems.at(name).budget, settings.budget) << name;
  EXPECT_EQ(c.telemetry, d.telemetry);
  EXPECT_EQ(c.forecast, d.forecast);
}

TEST(Config, ReadsEveryKind) {
  auto parsed = parseConfig(R"(
[daemon]
tick_ms = 500
log_level = "debug"
[api]
socket_path = "/tmp/x.sock"
socket_group = ""
[metrics]
enabled = false
listen = "[::1]:0"
[subsystems.housekeeping]
budget_ms = 7
[islands.latency]
cpus = "2-3"
mems = "0"
[islands.batch]
cpus = [4, 5]
)",
                            "t.toml");
  ASSERT_TRUE(parsed.ok()) << errorsOf(parsed);
  EXPECT_EQ(parsed.config.tick.count(), 500);
  EXPECT_EQ(parsed.config.logLevel, "debug");
  EXPECT_EQ(parsed.config.socketGroup, "");
  EXPECT_FALSE(parsed.config.metricsEnabled);
  EXPECT_TRUE(parsed.config.metricsListen.ipv6);
  EXPECT_EQ(parsed.config.subsystems.at("housekeeping").budget.count(), 7);
  ASSERT_EQ(parsed.config.islands.size(), 2u);
}

TEST(Config, ReportsEveryErrorWithFileLineAndKey) {
  auto parsed = parseConfig(R"([daemon]
tick_ms = "fast"
log_levle = "info"
drain_timeout_ms = -5

[api]
threads = 1000
socket_path = "relative.sock"

[metrics]
listen = "localhost:80"

[bogus]
x = 1

[subsystems.no-such]
budget_ms = 1
)",
                            "broken.toml");
  ASSERT_FALSE(parsed.ok());
  std::string all = errorsOf(parsed);
  const ConfigError* type = findError(parsed, "daemon.tick_ms");
  ASSERT_NE(type, nullptr) << all;
  EXPECT_EQ(type->file, "broken.toml");
  EXPECT_EQ(type->line, 2);
  EXPECT_NE(type->message.find("expected an integer, found string"), std::string::npos);
  const ConfigError* unknown = findError(parsed, "daemon.log_levle");
  ASSERT_NE(unknown, nullptr) << all;
  EXPECT_EQ(unknown->line, 3);
  EXPECT_NE(unknown->message.find("unknown key"), std::string::npos);
  EXPECT_NE(unknown->message.find("log_level"), std::string::npos);  // lists the known keys
  const ConfigError* range = findError(parsed, "daemon.drain_timeout_ms");
  ASSERT_NE(range, nullptr) << all;
  EXPECT_NE(range->message.find("-5 is out of range 0..600000"), std::string::npos);
  EXPECT_NE(findError(parsed, "api.threads"), nullptr) << all;
  EXPECT_NE(findError(parsed, "api.socket_path"), nullptr) << all;
  EXPECT_NE(findError(parsed, "metrics.listen"), nullptr) << all;
  EXPECT_NE(findError(parsed, "bogus"), nullptr) << all;
  EXPECT_NE(findError(parsed, "subsystems.no-such"), nullptr) << all;
  EXPECT_EQ(parsed.errors.size(), 8u) << all;
  // In file order, each formatted as FILE:LINE:COLUMN: KEY: MESSAGE.
  EXPECT_EQ(parsed.errors.front().format().rfind("broken.toml:2:", 0), 0u) << all;
  for (size_t i = 1; i < parsed.errors.size(); ++i)
    EXPECT_LE(parsed.errors[i - 1].line, parsed.errors[i].line);
}

TEST(Config, OverlappingIslandsAreAnError) {
  auto parsed = parseConfig(R"([islands.a]
cpus = "0-3"
[islands.b]
cpus = [3, 4]
[islands.c]
cpus = "5"
)",
                            "islands.toml");
  ASSERT_EQ(parsed.errors.size(), 1u) << errorsOf(parsed);
  EXPECT_EQ(parsed.errors[0].key, "islands.b.cpus");
  EXPECT_EQ(parsed.errors[0].line, 4);
  EXPECT_NE(parsed.errors[0].message.find("CPUs 3 overlap with island 'a' (line 1)"),
            std::string::npos)
      << parsed.errors[0].message;
}

TEST(Config, IslandProblemsAreReportedPerKey) {
  auto parsed = parseConfig(R"([islands.a]
mems = "0"
[islands.b]
cpus = "9-2"
[islands.c]
cpus = ["x"]
[islands."bad name"]
cpus = "1"
)",
                            "i.toml");
  std::string all = errorsOf(parsed);
  EXPECT_NE(findError(parsed, "islands.a.cpus"), nullptr) << all;  // missing
  EXPECT_NE(findError(parsed, "islands.b.cpus"), nullptr) << all;  // reversed
  EXPECT_NE(findError(parsed, "islands.c.cpus"), nullptr) << all;  // wrong type
  EXPECT_NE(findError(parsed, "islands.bad name"), nullptr) << all;
}

// "shared" names the CPUs no island claims: an island of that name would be
// refused by the islands subsystem at every tick, so the file is refused.
TEST(Config, TheSharedIslandNameIsReserved) {
  auto parsed = parseConfig("[islands.shared]\ncpus = \"0-1\"\n", "r.toml");
  const ConfigError* error = test::findError(parsed, "islands.shared");
  ASSERT_NE(error, nullptr) << test::errorsOf(parsed);
  EXPECT_EQ(error->line, 1);
  EXPECT_NE(error->message.find("'shared'"), std::string::npos) << error->message;
  EXPECT_TRUE(parsed.config.islands.empty());
}

TEST(Config, BudgetsMustFitInATick) {
  auto parsed = parseConfig("[daemon]\ntick_ms = 100\n", "b.toml");
  ASSERT_EQ(parsed.errors.size(), 1u) << errorsOf(parsed);
  EXPECT_EQ(parsed.errors[0].key, "daemon.tick_ms");
  EXPECT_NE(parsed.errors[0].message.find("199 ms"), std::string::npos);
}

TEST(Config, SyntaxErrorsCarryTheirPosition) {
  auto parsed = parseConfig("[daemon]\ntick_ms = = 3\n", "s.toml");
  ASSERT_EQ(parsed.errors.size(), 1u);
  EXPECT_EQ(parsed.errors[0].line, 2);
  EXPECT_NE(parsed.errors[0].message.find("TOML syntax"), std::string::npos);
}

TEST(Config, UnreadableFileIsOneErrorWithoutALine) {
  test::TempDir dir;
  auto parsed = loadConfigFile(dir.file("missing.toml"));
  ASSERT_EQ(parsed.errors.size(), 1u);
  EXPECT_EQ(parsed.errors[0].line, 0);
  EXPECT_NE(parsed.errors[0].format().find("No such file"), std::string::npos);
}

TEST(Config, NamesKeysThatNeedARestart) {
  DaemonConfig a = defaultConfig();
  DaemonConfig b = a;
  b.tick = std::chrono::milliseconds(200);
  EXPECT_TRUE(restartOnlyChanges(a, b).empty());
  b.socketPath = "/tmp/other.sock";
  b.metricsListen.port = 1;
  EXPECT_EQ(restartOnlyChanges(a, b),
            (std::vector<std::string>{"api.socket_path", "metrics.listen"}));
}

}  // namespace
}  // namespace Atoll
