// The [telemetry], [forecast] and [planner] tables: values read, defaults that work on
// any host, and bad values rejected with the key and the value named.
#include <gtest/gtest.h>

#include "runtime/Config.h"
#include "tests/runtime/ConfigErrors.h"

namespace Atoll {
namespace {

using test::errorsOf;
using test::findError;

TEST(MainJobConfig, DefaultsWatchMachineSliceAndLibvirtWithFiveMinuteSteps) {
  DaemonConfig d = defaultConfig();
  EXPECT_TRUE(d.telemetry.enabled);
  EXPECT_EQ(d.telemetry.selectors, std::vector<std::string>{"machine.slice/*"});
  EXPECT_EQ(d.telemetry.libvirtUri, "qemu:///system");
  EXPECT_TRUE(d.telemetry.cgroupMount.empty());  // detected
  EXPECT_EQ(d.telemetry.libvirtTimeout, std::chrono::milliseconds(500));
  EXPECT_EQ(d.forecast.step, std::chrono::seconds(300));
  EXPECT_EQ(d.forecast.horizonSteps(), 72);
  EXPECT_EQ(d.forecast.seasonSteps(), 288);
}

TEST(MainJobConfig, ReadsTelemetryAndForecastTables) {
  auto parsed = parseConfig(R"(
[telemetry]
cgroup_mount = "/sys/fs/cgroup/unified"
selectors = ["machine.slice/*", "batch/*/job"]
libvirt_uri = ""
sched_probe = false
net_probe = true
block_probe = false
discover_every_ticks = 3
libvirt_timeout_ms = 1500
[forecast]
step_seconds = 60
horizon_seconds = 3600
season_seconds = 86400
)",
                            "t.toml");
  ASSERT_TRUE(parsed.ok()) << errorsOf(parsed);
  const auto& t = parsed.config.telemetry;
  EXPECT_EQ(t.cgroupMount, "/sys/fs/cgroup/unified");
  EXPECT_EQ(t.selectors, (std::vector<std::string>{"machine.slice/*", "batch/*/job"}));
  EXPECT_EQ(t.libvirtUri, "");
  EXPECT_FALSE(t.schedProbe);
  EXPECT_TRUE(t.netProbe);
  EXPECT_FALSE(t.blockProbe);
  EXPECT_EQ(t.discoverEveryTicks, 3);
  EXPECT_EQ(t.libvirtTimeout, std::chrono::milliseconds(1500));
  EXPECT_EQ(parsed.config.forecast.horizonSteps(), 60);
  EXPECT_EQ(parsed.config.forecast.seasonSteps(), 1440);
}

TEST(MainJobConfig, RejectsBadSelectorsWithTheValue) {
  for (std::string bad : {"/machine.slice/*", "a//b", "../escape", ""}) {
    auto parsed = parseConfig("[telemetry]\nselectors = [\"" + bad + "\"]\n", "t.toml");
    const ConfigError* e = findError(parsed, "telemetry.selectors");
    ASSERT_NE(e, nullptr) << bad << ": " << errorsOf(parsed);
    EXPECT_NE(e->message.find("'" + bad + "'"), std::string::npos) << e->format();
    EXPECT_EQ(e->line, 2);
  }
  auto wrongType = parseConfig("[telemetry]\nselectors = \"machine.slice/*\"\n", "t.toml");
  ASSERT_NE(findError(wrongType, "telemetry.selectors"), nullptr);
  auto relative = parseConfig("[telemetry]\ncgroup_mount = \"sys/fs/cgroup\"\n", "t.toml");
  ASSERT_NE(findError(relative, "telemetry.cgroup_mount"), nullptr) << errorsOf(relative);
  for (std::string bad : {"0", "60001", "-5", "\"1s\""}) {
    auto timeout = parseConfig("[telemetry]\nlibvirt_timeout_ms = " + bad + "\n", "t.toml");
    const ConfigError* e = findError(timeout, "telemetry.libvirt_timeout_ms");
    ASSERT_NE(e, nullptr) << bad << ": " << errorsOf(timeout);
  }
  auto unknown = parseConfig("[telemetry]\nselector = []\n", "t.toml");
  const ConfigError* typo = findError(unknown, "telemetry.selector");
  ASSERT_NE(typo, nullptr);
  EXPECT_NE(typo->message.find("selectors"), std::string::npos) << typo->message;
}

TEST(MainJobConfig, RejectsHorizonsThatAreNotWholeStepsOrTooLong) {
  auto partial = parseConfig("[forecast]\nstep_seconds = 300\nhorizon_seconds = 1000\n", "f.toml");
  const ConfigError* e = findError(partial, "forecast.horizon_seconds");
  ASSERT_NE(e, nullptr) << errorsOf(partial);
  EXPECT_NE(e->message.find("1000"), std::string::npos) << e->message;

  auto tooLong = parseConfig("[forecast]\nstep_seconds = 1\nhorizon_seconds = 145\n", "f.toml");
  EXPECT_NE(findError(tooLong, "forecast.horizon_seconds"), nullptr) << errorsOf(tooLong);

  // A one-second step with the daily season would keep 86400 steps per series.
  auto season = parseConfig("[forecast]\nstep_seconds = 1\nhorizon_seconds = 60\n", "f.toml");
  EXPECT_NE(findError(season, "forecast.season_seconds"), nullptr) << errorsOf(season);
  auto noSeason = parseConfig(
      "[forecast]\nstep_seconds = 1\nhorizon_seconds = 60\nseason_seconds = 0\n", "f.toml");
  EXPECT_TRUE(noSeason.ok()) << errorsOf(noSeason);

  auto beyondSeason = parseConfig(
      "[forecast]\nstep_seconds = 60\nhorizon_seconds = 7200\nseason_seconds = 3600\n", "f.toml");
  EXPECT_NE(findError(beyondSeason, "forecast.horizon_seconds"), nullptr) << errorsOf(beyondSeason);
}

TEST(MainJobConfig, TelemetryAndForecastChangesNeedARestart) {
  DaemonConfig a = defaultConfig();
  DaemonConfig b = a;
  b.telemetry.selectors = {"other/*"};
  b.forecast.step = std::chrono::seconds(60);
  auto keys = restartOnlyChanges(a, b);
  EXPECT_NE(std::find(keys.begin(), keys.end(), "telemetry"), keys.end());
  EXPECT_NE(std::find(keys.begin(), keys.end(), "forecast"), keys.end());
}

TEST(MainJobConfig, PlannerDefaultsToObserveWithThePlannersOwnKnobs) {
  DaemonConfig d = defaultConfig();
  EXPECT_EQ(d.planner.config.mode, planner::Mode::Observe);
  EXPECT_TRUE(d.planner.islandModes.empty());
  EXPECT_EQ(d.planner.config.validate(), "");
  EXPECT_EQ(d.subsystems.count("planner"), 1u);
}

TEST(MainJobConfig, ReadsThePlannerTable) {
  auto parsed = parseConfig(R"(
[planner]
mode = "enforce"
horizon_steps = 24
risk_threshold = 0.1
headroom = 1.2
max_cpus_per_resize = 4
allow_vm_moves = false
margin = 1
min_margin = 0.5
max_margin = 2.5
min_dwell_seconds = 600
budget_window_seconds = 1800
host_moves_per_window = 2
island_moves_per_window = 1
hysteresis_window_seconds = 900
island_cooldown_seconds = 0
same_role_cooldown_seconds = 600
balance_band = 0.25
resize_quantile = 95
min_relief_share = 0.25
min_move_coverage = 0.8
donor_peak_over_cooldown = true
donor_harm_over_cooldown = false
min_risk_p50_share = 0.3
donor_rule = "expected-unmet"
[planner.islands]
latency = "observe"
shared = "enforce"
)",
                            "p.toml");
  ASSERT_TRUE(parsed.ok()) << errorsOf(parsed);
  const auto& p = parsed.config.planner;
  EXPECT_EQ(p.config.mode, planner::Mode::Enforce);
  EXPECT_EQ(p.config.horizonSteps, 24);
  EXPECT_DOUBLE_EQ(p.config.riskThreshold, 0.1);
  EXPECT_DOUBLE_EQ(p.config.headroom, 1.2);
  EXPECT_EQ(p.config.maxCpusPerResize, 4u);
  EXPECT_FALSE(p.config.allowVmMoves);
  EXPECT_DOUBLE_EQ(p.config.margin, 1.0);  // an integer is a number too
  EXPECT_DOUBLE_EQ(p.config.minMargin, 0.5);
  EXPECT_DOUBLE_EQ(p.config.maxMargin, 2.5);
  EXPECT_EQ(p.config.minDwellNs, 600'000'000'000);
  EXPECT_EQ(p.config.budgetWindowNs, 1800'000'000'000);
  EXPECT_EQ(p.config.hostMovesPerWindow, 2);
  EXPECT_EQ(p.config.islandMovesPerWindow, 1);
  EXPECT_EQ(p.config.hysteresisWindowNs, 900'000'000'000);
  EXPECT_EQ(p.config.islandCooldownNs, 0);  // 0 turns the cooldown off
  EXPECT_EQ(p.config.sameRoleCooldownNs, 600'000'000'000);
  EXPECT_DOUBLE_EQ(p.config.balanceBand, 0.25);
  EXPECT_EQ(p.config.resizeQuantile, 95);
  EXPECT_DOUBLE_EQ(p.config.minReliefShare, 0.25);
  EXPECT_DOUBLE_EQ(p.config.minMoveCoverage, 0.8);
  EXPECT_TRUE(p.config.donorKeepsPeakOverCooldown);
  EXPECT_FALSE(p.config.donorHarmOverCooldown);  // true by default
  EXPECT_DOUBLE_EQ(p.config.minRiskP50Share, 0.3);
  EXPECT_EQ(p.config.donorRule, planner::DonorRule::ExpectedUnmet);
  ASSERT_EQ(p.islandModes.size(), 2u);
  EXPECT_EQ(p.islandModes.at("latency"), planner::Mode::Observe);
  EXPECT_EQ(p.islandModes.at("shared"), planner::Mode::Enforce);
}

TEST(MainJobConfig, RejectsBadPlannerValuesNamingKeyValueAndLine) {
  struct Case {
    std::string body;
    std::string key;
    std::string named;  // the value as the message names it
  };
  for (const Case& c : std::vector<Case>{
           {"mode = \"act\"", "planner.mode", "'act'"},
           {"risk_threshold = 1.5", "planner.risk_threshold", "1.5"},
           {"risk_threshold = \"high\"", "planner.risk_threshold", "a number"},
           {"headroom = 0.5", "planner.headroom", "0.5"},
           {"horizon_steps = 0", "planner.horizon_steps", "0"},
           {"max_cpus_per_resize = -1", "planner.max_cpus_per_resize", "-1"},
           {"allow_vm_moves = 1", "planner.allow_vm_moves", "a boolean"},
           {"min_dwell_seconds = 0", "planner.min_dwell_seconds", "0"},
           {"island_cooldown_seconds = -1", "planner.island_cooldown_seconds", "-1"},
           {"resize_quantile = 90", "planner.resize_quantile", "90"},
           {"same_role_cooldown_seconds = -1", "planner.same_role_cooldown_seconds", "-1"},
           {"balance_band = 1", "planner.balance_band", "1"},
           {"min_relief_share = 1.5", "planner.min_relief_share", "1.5"},
           {"min_move_coverage = -0.1", "planner.min_move_coverage", "-0.1"},
           {"min_risk_p50_share = 1.5", "planner.min_risk_p50_share", "1.5"},
           {"donor_peak_over_cooldown = 1", "planner.donor_peak_over_cooldown", "a boolean"},
           {"donor_harm_over_cooldown = \"yes\"", "planner.donor_harm_over_cooldown", "a boolean"},
           {"donor_rule = \"bogus\"", "planner.donor_rule", "bogus"},
           {"margni = 1.0", "planner.margni", "margin"},
           {"islands = { latency = \"sometimes\" }", "planner.islands.latency", "'sometimes'"},
           {"islands = { \"bad name\" = \"observe\" }", "planner.islands.bad name", "'bad name'"},
       }) {
    auto parsed = parseConfig("[daemon]\ntick_ms = 1000\n[planner]\n" + c.body + "\n", "p.toml");
    const ConfigError* e = findError(parsed, c.key);
    ASSERT_NE(e, nullptr) << c.body << ": " << errorsOf(parsed);
    EXPECT_NE(e->message.find(c.named), std::string::npos) << e->format();
    EXPECT_EQ(e->line, 4) << e->format();
    EXPECT_EQ(e->file, "p.toml");
  }
  // Each value alone is fine; together they break the planner's own rule.
  auto crossed = parseConfig("[planner]\nmargin = 0.2\nmin_margin = 0.5\n", "p.toml");
  const ConfigError* e = findError(crossed, "planner");
  ASSERT_NE(e, nullptr) << errorsOf(crossed);
  EXPECT_NE(e->message.find("planner.margin = 0.2"), std::string::npos) << e->format();
  EXPECT_EQ(e->line, 1);
}

TEST(MainJobConfig, PlannerModeFollowsReloadsButItsKnobsNeedARestart) {
  DaemonConfig a = defaultConfig();
  DaemonConfig b = a;
  b.planner.config.mode = planner::Mode::Enforce;
  b.planner.islandModes["latency"] = planner::Mode::Observe;
  auto keys = restartOnlyChanges(a, b);
  EXPECT_EQ(std::find(keys.begin(), keys.end(), "planner"), keys.end());
  b.planner.config.margin = 1.0;
  keys = restartOnlyChanges(a, b);
  EXPECT_NE(std::find(keys.begin(), keys.end(), "planner"), keys.end());
}

}  // namespace
}  // namespace Atoll
