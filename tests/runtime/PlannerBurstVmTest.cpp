// In the test VM (full cgroup v2, four CPUs, two nodes): atolld with two
// islands, "alpha" (CPU 1) and "beta" (CPUs 2-3), a one-second forecast step
// and a season as long as the period of a synthetic burst. A load generator
// in alpha bursts to 1.2 cores for half of every period on the wall clock.
// The planner starts in observe mode while the forecaster learns the period
// (its reactions to the first bursts are explained, not executed), and is
// switched to enforce mode by a reload after a burst. The next resize must
// then come from the forecast: alpha's cpuset.cpus grows while the generator
// is idle, before the next burst, and the journaled decision explains it
// with its inputs. Then the load swings to the other island: alpha's
// generator stops for good, and a new workload in beta bursts to 1.5 cores
// on the one CPU beta has left. Once the forecaster sees alpha idle, alpha
// has slack and giving the CPU back (alpha -> beta, the reverse of the first
// resize) becomes a candidate; the island cooldown must decline it, naming
// itself in the declined decision, and alpha must keep its CPUs to the end.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "numa/CgroupV2.h"
#include "numa/CpuSet.h"
#include "numa/IslandEnforcer.h"
#include "numa/Topology.h"
#include "tests/runtime/AtolldInVm.h"
#include "tests/runtime/WallClockLoad.h"
#include "util/Fs.h"

namespace Atoll {
namespace {

using namespace std::chrono_literals;

constexpr const char* kMount = test::AtolldInVm::kMount;
constexpr const char* kManagedRoot = test::AtolldInVm::kManagedRoot;
constexpr int64_t kSecondNs = 1'000'000'000;

// The scenario, in forecast steps of one second.
constexpr int kPeriodSeconds = 10;  // the burst period, and the forecaster's season
constexpr int kBurstSeconds = 5;
constexpr int kHorizonSteps = 6;  // the planner looks this far ahead
// Seconds after the first burst: enforce mode from here (alpha idle, the
// forecaster has seen one whole period and one burst more)...
constexpr int kEnforceAfter = 16;
// ...alpha must have grown by here (two bursts later at the latest)...
constexpr int kGrowBy = 30;
// ...alpha's generator stops for good here, at the end of the burst that
// follows the latest allowed resize...
constexpr int kSwingAt = 35;
// ...a new workload joins beta and bursts from here on, half a period out of
// phase with alpha's old bursts: by then the forecaster has seen alpha idle
// for a few seasons (alpha's p95 falls below one core about 30 s after its
// last burst), and beta's forecast, redefined with the new member, is young
// enough to see its bursts as contention...
constexpr int kBetaBurstsFrom = 55;
// ...and the scenario ends here at the latest.
constexpr int kEndAfter = 110;
// Once a guard declined the reversal, the load keeps swinging this long
// (one more beta burst) to show that nothing else gives way.
constexpr int kWatchAfterGuard = kPeriodSeconds;
// Changes to one island are this far apart at least: longer than the test.
constexpr int kIslandCooldownSeconds = 3600;
// A donor keeps one of its CPUs, so beta (two CPUs) can only ever give one:
// the resize alpha needs is sized to what a resize can bring here.
constexpr int kMaxCpusPerResize = 1;
// The move budget: at most this many resizes touch one island per window.
constexpr int kIslandMovesPerWindow = 2;
class PlannerBurstVmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = daemon_.prepare("atoll-planner-vm", 4); !why.empty()) GTEST_SKIP() << why;
    cli_ = daemon_.cli();
    dir_ = daemon_.dir();
    socket_ = daemon_.socket();
    writeConfig("observe");
  }

  void writeConfig(const std::string& mode) {
    std::ofstream config(dir_ + "/atolld.toml", std::ios::trunc);
    config << "[daemon]\ntick_ms = 500\n"
           << "[api]\nsocket_path = \"" << socket_ << "\"\nsocket_group = \"\"\n"
           << "[metrics]\nenabled = false\n"
           << "[state]\ndirectory = \"" << dir_ << "/state\"\n"
           << "[subsystems.telemetry]\nbudget_ms = 100\n"
           << "[subsystems.forecast]\nbudget_ms = 80\n"
           << "[subsystems.planner]\nbudget_ms = 50\n"
           << "[subsystems.islands]\nbudget_ms = 140\n"
           << "[telemetry]\ncgroup_mount = \"" << kMount << "\"\n"
           << "selectors = [\"" << kManagedRoot << "/*/*\"]\nlibvirt_uri = \"\"\n"
           << "sched_probe = false\nnet_probe = false\nblock_probe = false\n"
           << "discover_every_ticks = 1\n"
           << "[forecast]\nstep_seconds = 1\nhorizon_seconds = " << kHorizonSteps
           << "\nseason_seconds = " << kPeriodSeconds << "\n"
           << "[islands.alpha]\ncpus = \"1\"\nmems = \"0\"\n"
           << "[islands.beta]\ncpus = \"2-3\"\nmems = \"1\"\n"
           << "[planner]\nmode = \"" << mode << "\"\nhorizon_steps = " << kHorizonSteps << "\n"
           << "margin = 0.1\nmin_margin = 0.1\n"
           << "budget_window_seconds = 3600\nhost_moves_per_window = 8\n"
           << "island_moves_per_window = " << kIslandMovesPerWindow << "\n"
           << "hysteresis_window_seconds = 3600\n"
           << "island_cooldown_seconds = " << kIslandCooldownSeconds << "\n"
           << "max_cpus_per_resize = " << kMaxCpusPerResize << "\n";
    ASSERT_TRUE(config.good());
  }

  void TearDown() override {
    loads_.clear();
    daemon_.stop(SIGTERM);
    for (const char* workload : {"alpha/load", "beta/load", "beta/burst"})
      ::rmdir((std::string(kMount) + "/" + kManagedRoot + "/" + workload).c_str());
    test::AtolldInVm::removeIslands({"alpha", "beta"});
  }

  void startDaemon() { ASSERT_TRUE(daemon_.start()); }

  std::string islandPath(const std::string& island) const {
    return std::string(kMount) + "/" + kManagedRoot + "/" + island;
  }
  std::string cpusOf(const std::string& island) const {
    return std::string(trim(readFile(islandPath(island) + "/cpuset.cpus").value_or("")));
  }

  // `atoll plan history --json` through the daemon's socket.
  nlohmann::json history() {
    const std::string out = dir_ + "/history.json";
    const std::string command =
        cli_ + " plan history --json --socket " + socket_ + " >" + out + " 2>>" + dir_ + "/cli.log";
    if (WEXITSTATUS(std::system(command.c_str())) != 0) return nullptr;
    return nlohmann::json::parse(readFile(out).value_or(""), nullptr, false);
  }

  std::string log() const { return daemon_.log(); }

  test::AtolldInVm daemon_;
  std::string cli_, dir_, socket_;
  std::vector<test::WallClockLoad> loads_;
};

// Polls `done` every 20 ms until `untilNs` (realtime).
template <typename Done>
bool pollUntil(Done done, int64_t untilNs) {
  while (test::realtimeNowNs() < untilNs) {
    if (done()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return done();
}

// One line per decision record since `fromNs`, timed from `originNs`.
std::string summary(const nlohmann::json& decisions, int64_t originNs, int64_t fromNs) {
  std::string out;
  if (!decisions.is_object() || !decisions["decisions"].is_array()) return "no history\n";
  for (const auto& d : decisions["decisions"]) {
    const int64_t at = d.value("at_ns", int64_t{0});
    if (at < fromNs) continue;
    char line[512];
    std::snprintf(line, sizeof line, "%+8.2f s %-13s %s->%s %-20s execute=%d benefit=%.2f: %s\n",
                  double(at - originNs) / 1e9, d.value("action", "").c_str(),
                  d.value("from", "").c_str(), d.value("to", "").c_str(),
                  d.value("rule", "").c_str(), int(d.value("execute", false)),
                  d.value("benefit_core_s", 0.0), d.value("reason", "").c_str());
    out += line;
  }
  return out;
}

bool isGuard(const std::string& rule) {
  return rule == "hysteresis" || rule == "island-budget" || rule == "host-budget" ||
         rule == "dwell" || rule == "in-flight" || rule == "cooldown";
}

TEST_F(PlannerBurstVmTest, AnIslandGrowsBeforeAForecastBurstAndGuardsStopAFlipFlop) {
  startDaemon();
  // The islands subsystem creates both islands from the configuration.
  ASSERT_TRUE(pollUntil([&] { return cpusOf("alpha") == "1" && cpusOf("beta") == "2-3"; },
                        test::realtimeNowNs() + 30 * kSecondNs))
      << "alpha: '" << cpusOf("alpha") << "', beta: '" << cpusOf("beta") << "'\n"
      << log();
  for (const char* island : {"alpha", "beta"})
    ASSERT_EQ(::mkdir((islandPath(island) + "/load").c_str(), 0755), 0) << island;

  // Bursts start on whole seconds, the forecaster's step boundaries.
  const int64_t firstBurst = (test::realtimeNowNs() / kSecondNs + 2) * kSecondNs;
  const int64_t period = kPeriodSeconds * kSecondNs;
  const int64_t burst = kBurstSeconds * kSecondNs;
  const int64_t end = firstBurst + kEndAfter * kSecondNs;
  const int64_t swing = firstBurst + kSwingAt * kSecondNs;
  const test::LoadSchedule alpha{firstBurst, period, burst, swing, 2, 0.6};
  const int64_t betaFrom = firstBurst + kBetaBurstsFrom * kSecondNs;
  const test::LoadSchedule betaIdle{end, period, burst, end, 1, 1.0};  // never bursts
  loads_.reserve(3);  // alpha's, beta's idle one, beta's bursts: references stay valid
  auto alphaLoad =
      test::WallClockLoad::start(islandPath("alpha") + "/load", alpha, dir_ + "/alpha-bursts");
  ASSERT_TRUE(alphaLoad) << alphaLoad.error().message();
  loads_.push_back(std::move(*alphaLoad));
  // Idle, but a member of beta from the start, so that beta is forecast (and
  // can give CPUs) all along.
  auto betaLoad =
      test::WallClockLoad::start(islandPath("beta") + "/load", betaIdle, dir_ + "/beta-idle");
  ASSERT_TRUE(betaLoad) << betaLoad.error().message();
  loads_.push_back(std::move(*betaLoad));
  const test::WallClockLoad& alphaBursts = loads_[0];

  // Observe mode while the forecaster learns: nothing may change.
  const int64_t enforceAt = firstBurst + kEnforceAfter * kSecondNs;
  ASSERT_FALSE(pollUntil([&] { return cpusOf("alpha") != "1"; }, enforceAt))
      << "alpha changed in observe mode: " << cpusOf("alpha") << "\n"
      << log();
  ASSERT_FALSE(alphaBursts.inBurst(test::realtimeNowNs()));
  writeConfig("enforce");
  ASSERT_EQ(::kill(daemon_.pid(), SIGHUP), 0);

  // (1) alpha's cpuset grows, and when.
  int64_t grewAt = 0;
  std::string grownCpus;
  pollUntil(
      [&] {
        const std::string cpus = cpusOf("alpha");
        if (cpus.empty() || cpus == "1") return false;
        grewAt = test::realtimeNowNs();
        grownCpus = cpus;
        return true;
      },
      firstBurst + kGrowBy * kSecondNs);
  // The burst that follows (by the schedule) must have been recorded.
  if (grewAt != 0) {
    const int64_t nextScheduled = firstBurst + ((grewAt - firstBurst) / period + 1) * period;
    std::this_thread::sleep_until(std::chrono::steady_clock::now() +
                                  std::chrono::nanoseconds(std::max<int64_t>(
                                      0, nextScheduled + kSecondNs / 2 - test::realtimeNowNs())));
  }
  const std::vector<int64_t> starts = alphaBursts.burstStarts();
  ASSERT_NE(grewAt, 0) << "alpha was not resized within " << kGrowBy - kEnforceAfter
                       << " s of enforce mode (bursts at " << ::testing::PrintToString(starts)
                       << ")\n"
                       << history().dump(1) << "\n"
                       << log();
  EXPECT_GT(numa::parseCpuList(grownCpus, "alpha cpuset.cpus").value_or(numa::CpuList{}).size(), 1u)
      << grownCpus;

  // The decision that grew it: the first executed resize towards alpha.
  nlohmann::json decisions = history();
  ASSERT_TRUE(decisions.is_object() && decisions["decisions"].is_array()) << log();
  nlohmann::json resize;
  for (const auto& d : decisions["decisions"])
    if (d["action"] == "resize-island" && d["to"] == "alpha" && d["execute"].get<bool>()) {
      resize = d;
      break;
    }
  ASSERT_TRUE(resize.is_object()) << decisions.dump(1);
  const int64_t decidedAt = resize["at_ns"].get<int64_t>();
  // Before the burst: decided and applied while the generator was idle, with
  // the next burst still ahead, within the planner's horizon.
  auto next = std::upper_bound(starts.begin(), starts.end(), grewAt);
  ASSERT_NE(next, starts.end()) << "no burst after the resize at " << grewAt;
  EXPECT_GE(decidedAt, enforceAt);
  EXPECT_FALSE(alphaBursts.inBurst(decidedAt))
      << "decided at " << decidedAt << " during a burst: a reaction, not a prediction "
      << ::testing::PrintToString(starts) << " (seconds from the first burst)\n"
      << summary(decisions, firstBurst, enforceAt - period);
  EXPECT_FALSE(alphaBursts.inBurst(grewAt))
      << "alpha grew at " << grewAt << " during a burst: a reaction, not a prediction "
      << ::testing::PrintToString(starts) << "\n"
      << resize.dump(1);
  EXPECT_LT(decidedAt, *next);
  EXPECT_LT(grewAt, *next);
  EXPECT_LE(*next - decidedAt, (kHorizonSteps + 1) * kSecondNs)
      << "the next burst was beyond the horizon when the resize was decided\n"
      << resize.dump(1);
  RecordProperty("resize_lead_ms", static_cast<int>((*next - grewAt) / 1'000'000));

  // (2) The record explains it with its inputs.
  EXPECT_EQ(resize["from"], "beta");
  EXPECT_EQ(resize["mode"], "enforce");
  EXPECT_EQ(resize["rule"], "benefit-exceeds-cost");
  EXPECT_GT(resize["benefit_core_s"].get<double>(), resize["cost_core_s"]["total"].get<double>());
  EXPECT_GE(resize["first_risk_step"].get<int>(), 1);
  EXPECT_FALSE(resize["reason"].get<std::string>().empty());
  EXPECT_TRUE(resize["cpus_moved"].is_array() && !resize["cpus_moved"].empty()) << resize.dump(1);
  bool explained = false;
  for (const auto& view : resize["islands"]) {
    if (view["island"] != "alpha") continue;
    explained = true;
    EXPECT_EQ(view["capacity_before"].get<double>(), 1.0) << view.dump();
    EXPECT_GT(view["capacity_after"].get<double>(), 1.0) << view.dump();
    EXPECT_GT(view["p95_peak"].get<double>(), 1.0) << view.dump();
    EXPECT_GE(view["p95_peak"].get<double>(), view["p50_peak"].get<double>()) << view.dump();
    EXPECT_GE(view["contention_before"].get<double>(), 0.05) << view.dump();
    EXPECT_LT(view["contention_after"].get<double>(), view["contention_before"].get<double>())
        << view.dump();
  }
  EXPECT_TRUE(explained) << resize.dump(1);

  // (3) The load swings to beta. Giving the CPU back (alpha -> beta) must
  // arise as a candidate worth its cost once alpha is seen idle, be declined
  // by a guard that names itself, and alpha must keep its CPUs to the end.
  const std::string grownLayout = cpusOf("alpha") + "|" + cpusOf("beta");
  std::set<std::string> layouts{grownLayout};
  auto recordLayout = [&] {
    layouts.insert(cpusOf("alpha") + "|" + cpusOf("beta"));
    return false;
  };
  pollUntil(recordLayout, betaFrom - 2 * kSecondNs);
  ASSERT_EQ(::mkdir((islandPath("beta") + "/burst").c_str(), 0755), 0);
  const test::LoadSchedule beta{betaFrom, period, burst, end, 3, 0.5};
  auto betaBurst =
      test::WallClockLoad::start(islandPath("beta") + "/burst", beta, dir_ + "/beta-bursts");
  ASSERT_TRUE(betaBurst) << betaBurst.error().message();
  loads_.push_back(std::move(*betaBurst));
  // The first decline of the reverse change by a guard, where the change
  // was worth its cost: without the guard it would have run.
  nlohmann::json reversal;
  auto isReversal = [](const nlohmann::json& d) {
    return (d["action"] == "resize-island" && d["from"] == "alpha" && d["to"] == "beta") ||
           (d["action"] == "move-vm" && d["from"] == "beta" && d["to"] == "alpha");
  };
  auto worthItsCost = [](const nlohmann::json& d) {
    return d["benefit_core_s"].get<double>() >
           d["cost_core_s"]["total"].get<double>() * (1 + d["margin"].get<double>());
  };
  int64_t lastHistoryAt = 0;
  int64_t stopAt = end;
  pollUntil(
      [&] {
        const int64_t now = test::realtimeNowNs();
        recordLayout();
        if (now >= stopAt) return true;
        if (!reversal.is_null() || now - lastHistoryAt < kSecondNs) return false;
        lastHistoryAt = now;
        const nlohmann::json h = history();
        if (!h.is_object() || !h["decisions"].is_array()) return false;
        for (const auto& d : h["decisions"])
          if (d["at_ns"].get<int64_t>() > decidedAt && isReversal(d) && !d["execute"].get<bool>() &&
              isGuard(d["rule"].get<std::string>()) && worthItsCost(d)) {
            reversal = d;
            stopAt = std::min(end, now + kWatchAfterGuard * kSecondNs);
            break;
          }
        return false;
      },
      end);
  decisions = history();
  ASSERT_TRUE(decisions.is_object() && decisions["decisions"].is_array()) << log();
  const std::string afterSwing = summary(decisions, firstBurst, swing - period);
  int executed = 0, guarded = 0, reversed = 0;
  std::set<std::string> guards;
  for (const auto& d : decisions["decisions"]) {
    if (d["action"] == "none") continue;
    if (d["execute"].get<bool>()) {
      ++executed;
      if (isReversal(d)) ++reversed;
    } else if (d["at_ns"].get<int64_t>() > decidedAt && isGuard(d["rule"].get<std::string>())) {
      ++guarded;
      guards.insert(d["rule"].get<std::string>());
      EXPECT_FALSE(d["reason"].get<std::string>().empty()) << d.dump();
    }
  }
  const std::vector<int64_t> betaStarts = loads_.back().burstStarts();
  ASSERT_FALSE(betaStarts.empty()) << "beta's generator never burst\n" << log();
  ASSERT_TRUE(reversal.is_object())
      << "no guard declined giving the CPU back, worth its cost, while beta burst (beta bursts at "
      << ::testing::PrintToString(betaStarts) << ")\n"
      << afterSwing;
  EXPECT_EQ(reversal["rule"], "cooldown") << reversal.dump(1);
  EXPECT_NE(reversal["reason"].get<std::string>().find("cooldown"), std::string::npos)
      << reversal.dump(1);
  EXPECT_GE(reversal["at_ns"].get<int64_t>(), betaStarts.front()) << reversal.dump(1);
  EXPECT_EQ(reversed, 0) << "a change was reversed\n" << afterSwing;
  EXPECT_EQ(executed, 1) << "only the first resize may run\n" << afterSwing;
  EXPECT_EQ(layouts, std::set<std::string>{grownLayout}) << "the islands changed after alpha grew\n"
                                                         << afterSwing;
  EXPECT_EQ(cpusOf("alpha") + "|" + cpusOf("beta"), grownLayout);
  RecordProperty("executed_actions", executed);
  RecordProperty("guarded_declines", guarded);
  RecordProperty("reversal_declined_after_beta_bursts_ms",
                 static_cast<int>((reversal["at_ns"].get<int64_t>() - betaFrom) / 1'000'000));
  std::string names;
  for (const auto& g : guards) names += g + " ";
  RecordProperty("guards", names);
  std::printf("decisions from alpha's last burst on:\n%s", afterSwing.c_str());
}

}  // namespace
}  // namespace Atoll
