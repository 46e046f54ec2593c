// The `atoll` binary against a real atolld: status, state verbs, --json,
// exit codes, messages when the daemon is absent, generated docs.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "migrate/planner/Planner.h"
#include "runtime/ActionLog.h"
#include "runtime/EmbeddedStateStore.h"
#include "runtime/HostJournal.h"
#include "runtime/PlannerSubsystem.h"
#include "tests/runtime/TestSupport.h"
#include "tests/tools/RunAtoll.h"

namespace Atoll {
namespace {

using test::runAtoll;

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string failure;
    daemon = test::DaemonProcess::start(dir.path(), test::daemonArgsIn(dir), &failure);
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
  // housekeeping, self-metrics, telemetry, forecast, islands, planner, transfer
  EXPECT_EQ(status["subsystems"].size(), 7u);
}

TEST_F(Cli, PlanShowAndTuningReadTheDaemonInObserveMode) {
  auto plan = runAtoll("plan show --json" + socket);
  ASSERT_EQ(plan.exitCode, 0) << plan.err;
  auto shown = nlohmann::json::parse(plan.out, nullptr, false);
  ASSERT_TRUE(shown.is_object()) << plan.out;
  EXPECT_EQ(shown["mode"], "observe");  // a new install plans and explains, changes nothing
  auto human = runAtoll("plan show" + socket);
  ASSERT_EQ(human.exitCode, 0) << human.err;
  EXPECT_NE(human.out.find("mode observe"), std::string::npos) << human.out;
  auto tuning = runAtoll("plan tuning --json" + socket);
  ASSERT_EQ(tuning.exitCode, 0) << tuning.err;
  EXPECT_TRUE(nlohmann::json::parse(tuning.out, nullptr, false).is_object()) << tuning.out;
}

// atolld journals the tuning and how many changes led there, not the
// changes themselves: once it started again on that journal, `plan tuning`
// says how many changes came before and that they are not listed.
TEST(CliPlanTuning, CountsTheChangesBeforeTheDaemonStarted) {
  test::TempDir dir;
  {
    EmbeddedStateStore store;
    ActionLog actions;
    auto journal = HostJournal::open(dir.file("state"), {&store, &actions});
    ASSERT_TRUE(journal) << journal.error().message();
    store.attach(**journal);
    actions.attach(**journal);
    planner::TuningState tuning;
    tuning.margin = planner::PlannerConfig{}.margin;
    tuning.changes = 12;
    auto stored = store.put(Keyspace::Facts, std::string(kPlannerTuningKey),
                            planner::toJson(tuning), {0, 1, "test"});
    ASSERT_TRUE(stored) << stored.error().message();
  }
  std::string failure;
  auto daemon = test::DaemonProcess::start(dir.path(), test::daemonArgsIn(dir), &failure);
  ASSERT_TRUE(daemon) << failure;
  const std::string socket = " --socket " + dir.file("atolld.sock");

  auto human = runAtoll("plan tuning" + socket);
  ASSERT_EQ(human.exitCode, 0) << human.err;
  EXPECT_EQ(human.out.find("no tuning changes yet"), std::string::npos) << human.out;
  EXPECT_NE(human.out.find("tuning changes: 12 in all, 0 listed\n"), std::string::npos)
      << human.out;
  EXPECT_NE(human.out.find("12 changes before this start, not listed\n"), std::string::npos)
      << human.out;
  auto json = runAtoll("plan tuning --json" + socket);
  ASSERT_EQ(json.exitCode, 0) << json.err;
  auto tuning = nlohmann::json::parse(json.out, nullptr, false);
  ASSERT_TRUE(tuning.is_object()) << json.out;
  EXPECT_EQ(tuning["changes_total"], 12);
  EXPECT_EQ(tuning["changes_before_start"], 12);
  EXPECT_TRUE(tuning["changes"].empty());
}

TEST_F(Cli, TopReadsTheDaemonAndForecastShowNamesAnUnknownVm) {
  auto top = runAtoll("top --source daemon --json" + socket);
  ASSERT_EQ(top.exitCode, 0) << top.err;
  auto snapshot = nlohmann::json::parse(top.out, nullptr, false);
  ASSERT_TRUE(snapshot.is_object()) << top.out;
  EXPECT_EQ(snapshot["source"], "atolld");
  EXPECT_TRUE(snapshot["workloads"].is_array());

  auto unknown = runAtoll("forecast show no-such-vm" + socket);
  EXPECT_EQ(unknown.exitCode, 1) << unknown.out;
  EXPECT_NE(unknown.err.find("no workload 'no-such-vm'"), std::string::npos) << unknown.err;
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

const std::string kTwoSocketXml =
    " --topology-xml " ATOLL_SOURCE_DIR "/tests/numa/fixtures/two-socket.xml";

TEST_F(Cli, IslandListAndMapReadTheDaemon) {
  auto map = runAtoll("island --source daemon --json" + kTwoSocketXml + socket + " map");
  ASSERT_EQ(map.exitCode, 0) << map.err;
  auto view = nlohmann::json::parse(map.out, nullptr, false);
  ASSERT_TRUE(view.is_object()) << map.out;
  EXPECT_EQ(view["source"], "atolld");
  EXPECT_TRUE(view["islands"].empty()) << view.dump();  // built-in defaults configure none
  EXPECT_EQ(view["shared_cpus"], "0-31");
  if (!view["enforced"].get<bool>()) {
    EXPECT_TRUE(view["note"].is_string()) << view.dump();
  }

  auto list = runAtoll("island --source daemon" + kTwoSocketXml + socket + " list");
  ASSERT_EQ(list.exitCode, 0) << list.err;
  EXPECT_EQ(list.out.rfind("source: atolld\n", 0), 0u) << list.out;
  EXPECT_NE(list.out.find("shared: CPUs 0-31"), std::string::npos) << list.out;
  auto show = runAtoll("island --source daemon" + kTwoSocketXml + socket + " show nothing");
  EXPECT_EQ(show.exitCode, 2);
  EXPECT_NE(show.err.find("no such island"), std::string::npos) << show.err;
}

// A directory without cgroup.controllers stands for this build host's
// hybrid /sys/fs/cgroup; one listing only hugetlb for a v2 mount without
// cpuset. The map still shows the topology, every CPU shared, and says why.
TEST(CliWithoutDaemon, IslandMapDrawsTheTopologyWhereIslandsCannotBeEnforced) {
  test::TempDir dir;
  const std::string local = " --source local --cgroup-root " + dir.path() + kTwoSocketXml;
  auto text = runAtoll("island" + local + " map");
  ASSERT_EQ(text.exitCode, 0) << text.err;
  EXPECT_NE(text.out.find("shared: CPUs 0-31"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("note: " + dir.path() + " is not a cgroup v2 mount"), std::string::npos)
      << text.out;
  EXPECT_NE(text.out.find("cannot be enforced"), std::string::npos) << text.out;

  auto json = runAtoll("island --json" + local + " map");
  ASSERT_EQ(json.exitCode, 0) << json.err;
  auto view = nlohmann::json::parse(json.out, nullptr, false);
  ASSERT_TRUE(view.is_object()) << json.out;
  EXPECT_EQ(view["source"], "local");
  EXPECT_FALSE(view["enforced"].get<bool>());
  EXPECT_TRUE(view["islands"].empty());
  EXPECT_EQ(view["shared_cpus"], "0-31");
  EXPECT_EQ(view["topology"], "2 NUMA nodes, 2 packages, 16 cores, 32 PUs, 4 L3 domains");

  auto svg = runAtoll("island" + local + " map --svg " + dir.file("map.svg"));
  ASSERT_EQ(svg.exitCode, 0) << svg.err;
  EXPECT_NE(test::readTextFile(dir.file("map.svg")).find("<svg"), std::string::npos);
  EXPECT_NE(svg.err.find("cannot be enforced"), std::string::npos) << svg.err;

  auto list = runAtoll("island" + local + " list");
  ASSERT_EQ(list.exitCode, 0) << list.err;
  EXPECT_NE(list.out.find("shared: CPUs 0-31"), std::string::npos) << list.out;

  {
    std::ofstream controllers(dir.file("cgroup.controllers"));
    controllers << "hugetlb\n";
  }
  auto noCpuset = runAtoll("island" + local + " map");
  ASSERT_EQ(noCpuset.exitCode, 0) << noCpuset.err;
  EXPECT_NE(noCpuset.out.find("has no cpuset controller"), std::string::npos) << noCpuset.out;

  // auto: no daemon answers, so cgroupfs is read and the output says so.
  auto fallBack = runAtoll("island --cgroup-root " + dir.path() + kTwoSocketXml + " --socket " +
                           dir.file("none.sock") + " map");
  ASSERT_EQ(fallBack.exitCode, 0) << fallBack.err;
  EXPECT_NE(fallBack.err.find("reading cgroupfs instead"), std::string::npos) << fallBack.err;
  EXPECT_NE(fallBack.out.find("shared: CPUs 0-31"), std::string::npos) << fallBack.out;
  auto daemonOnly = runAtoll("island --source daemon --socket " + dir.file("none.sock") + " list");
  EXPECT_EQ(daemonOnly.exitCode, 3) << daemonOnly.err;
}

// Numbers of island options are plain decimal: "-1" is not taken for
// 18446744073709551615 bytes, nor "010" for 8 CPUs; the refusal names the
// option and the value and comes before cgroupfs is looked at (the empty
// directory given as the mount would fail later with exit code 1).
TEST(CliWithoutDaemon, IslandRefusesNumbersThatAreNotPlainDecimal) {
  test::TempDir dir;
  const std::string local = "island --source local --cgroup-root " + dir.path() + kTwoSocketXml;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {" create db --cpus 2-3 --memory-max -1", "--memory-max"},
      {" create db --cpus 2-3 --memory-low -4096", "--memory-low"},
      {" create db --cpus 2-3 --memory-min 0x1000", "--memory-min"},
      {" create db --count 010", "--count"},
      {" create db --cpus 2-3 --cpu-weight 0x64", "--cpu-weight"},
      {" resize db --grow 0x2", "--grow"},
      {" pin db 0x10", "pid"},
  };
  for (const auto& [options, option] : cases) {
    auto result = runAtoll(local + options);
    EXPECT_EQ(result.exitCode, 2) << options << ": " << result.err;
    EXPECT_NE(result.err.find(option), std::string::npos) << options << ": " << result.err;
    const std::string value = options.substr(options.rfind(' ') + 1);
    EXPECT_NE(result.err.find("'" + value + "'"), std::string::npos)
        << options << ": " << result.err;
  }
}

// The number options of the other verbs are as strict: integers are plain
// decimal, floating-point values finite and within their bounds. Each
// refusal exits with the usage code and names the option and the value,
// before a file, a daemon or a thread is touched: the absent socket would
// answer 3, the absent source file 1, and the replay's output keeps its
// content.
TEST(CliWithoutDaemon, NumberOptionsAreDecimalFiniteAndBounded) {
  test::TempDir dir;
  const std::string none = " --socket " + dir.file("none.sock");
  test::writeTextFile(dir.file("gap.csv"), "timestamp,value\n0,1\n300,2\n600,1\n60000,3\n");
  test::writeTextFile(dir.file("out.csv"), "earlier results\n");
  const std::string replay =
      "forecast replay --out " + dir.file("out.csv") + " " + dir.file("gap.csv");
  const std::string send = "transfer send " + dir.file("absent.img") + " 127.0.0.1:7477";
  struct Case {
    std::string command, option, value;
  };
  const std::vector<Case> cases = {
      {"bench isolation --noisy-threads 4000000000", "--noisy-threads", "4000000000"},
      {"bench isolation --duration-ms 0200", "--duration-ms", "0200"},
      {"bench isolation --interval-us 0x100", "--interval-us", "0x100"},
      {replay + " --max-gap nan", "--max-gap", "nan"},
      {replay + " --max-gap inf", "--max-gap", "inf"},
      {replay + " --max-gap 0.5", "--max-gap", "0.5"},
      {replay + " --season 010", "--season", "010"},
      {"status --timeout nan" + none, "--timeout", "nan"},
      {"top --source daemon --interval nan" + none, "--interval", "nan"},
      {"top --source daemon --count 010" + none, "--count", "010"},
      {"check --libvirt-timeout-ms 0100", "--libvirt-timeout-ms", "0100"},
      {send + " --rounds 010", "--rounds", "010"},
      {send + " --block-size 0x10000", "--block-size", "0x10000"},
      {send + " --downtime-ms 18446744073709551615", "--downtime-ms", "18446744073709551615"},
      {"transfer cancel 010" + none, "ID", "010"},
      {"migration cancel -1" + none, "ID", "-1"},
      {"migration start --qmp /run/vm.qmp --to 127.0.0.1:7477 --channels 010" + none, "--channels",
       "010"},
      {"migration start --qmp /run/vm.qmp --to 127.0.0.1:7477 --timeout nan" + none, "--timeout",
       "nan"},
      {"migration incoming --unix /run/vm.sock --expires 0x10" + none, "--expires", "0x10"},
  };
  for (const auto& [command, option, value] : cases) {
    auto result = runAtoll(command);
    EXPECT_EQ(result.exitCode, 2) << command << ": " << result.err;
    EXPECT_NE(result.err.find(option), std::string::npos) << command << ": " << result.err;
    EXPECT_NE(result.err.find(value), std::string::npos) << command << ": " << result.err;
  }
  EXPECT_EQ(test::readTextFile(dir.file("out.csv")), "earlier results\n");
}

// A replay whose input is refused leaves an earlier output as it was, even
// when the refused file comes after good ones.
TEST(CliWithoutDaemon, ForecastReplayKeepsTheOutputWhenAnInputIsRefused) {
  test::TempDir dir;
  std::filesystem::create_directory(dir.file("in"));
  std::string good = "timestamp,value\n";
  for (int i = 0; i < 40; ++i) good += std::to_string(i * 300) + ",1\n";
  test::writeTextFile(dir.file("in/a.csv"), good);
  test::writeTextFile(dir.file("in/z.csv"), "timestamp,value\n0,1\n300,2\n600,1\n60000,3\n");
  test::writeTextFile(dir.file("out.csv"), "earlier results\n");
  auto result = runAtoll("forecast replay --horizons 1 --season 0 --out " + dir.file("out.csv") +
                         " " + dir.file("in"));
  EXPECT_EQ(result.exitCode, 2) << result.err;
  EXPECT_NE(result.err.find("z.csv"), std::string::npos) << result.err;
  EXPECT_EQ(test::readTextFile(dir.file("out.csv")), "earlier results\n");
  std::filesystem::remove(dir.file("in/z.csv"));
  auto replayed = runAtoll("forecast replay --horizons 1 --season 0 --out " + dir.file("out.csv") +
                           " " + dir.file("in"));
  EXPECT_EQ(replayed.exitCode, 0) << replayed.err;
  EXPECT_EQ(test::readTextFile(dir.file("out.csv")).rfind("series,origin_index", 0), 0u);
}

// A series refused in the middle of many, after earlier ones were replayed
// and written, leaves the earlier output and no temporary file beside it; a
// replay that succeeds replaces the output and keeps its mode.
TEST(CliWithoutDaemon, ForecastReplayRefusedInTheMiddleLeavesNoPartialOutput) {
  test::TempDir dir;
  std::filesystem::create_directory(dir.file("in"));
  std::string good = "timestamp,value\n";
  for (int i = 0; i < 40; ++i) good += std::to_string(i * 300) + ",1\n";
  const int inputs = 20;
  const int refused = 14;  // after the first batch on a host with up to 8 workers
  auto name = [](int i) {
    return std::string(i < 10 ? "in/0" : "in/") + std::to_string(i) + ".csv";
  };
  for (int i = 0; i < inputs; ++i) test::writeTextFile(dir.file(name(i)), good);
  test::writeTextFile(dir.file(name(refused)), "timestamp,value\n0,1\n300,2\n600,1\n60000,3\n");
  test::writeTextFile(dir.file("out.csv"), "earlier results\n");
  std::filesystem::permissions(dir.file("out.csv"), std::filesystem::perms(0640));
  const std::string replay =
      "forecast replay --horizons 1 --season 0 --out " + dir.file("out.csv") + " " + dir.file("in");

  auto result = runAtoll(replay);
  EXPECT_EQ(result.exitCode, 2) << result.err;
  EXPECT_NE(result.err.find(name(refused).substr(3)), std::string::npos) << result.err;
  EXPECT_EQ(test::readTextFile(dir.file("out.csv")), "earlier results\n");
  std::vector<std::string> entries;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path()))
    entries.push_back(entry.path().filename().string());
  std::sort(entries.begin(), entries.end());
  EXPECT_EQ(entries, (std::vector<std::string>{"in", "out.csv"}));

  test::writeTextFile(dir.file(name(refused)), good);
  auto replayed = runAtoll(replay);
  EXPECT_EQ(replayed.exitCode, 0) << replayed.err;
  const std::string output = test::readTextFile(dir.file("out.csv"));
  EXPECT_EQ(output.rfind("series,origin_index", 0), 0u);
  for (int i = 0; i < inputs; ++i)
    EXPECT_NE(output.find("\n" + name(i).substr(3, 2) + ","), std::string::npos) << name(i);
  EXPECT_EQ(std::filesystem::status(dir.file("out.csv")).permissions(),
            std::filesystem::perms(0640));
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

// Replay options out of range are refused before any trace is read, each
// naming the option and the value; negative values used to be taken for
// "not given" and silently ignored.
TEST(CliWithoutDaemon, ReplayRefusesOptionsOutOfRange) {
  test::TempDir dir;  // an empty trace directory: never reached
  const std::string replay = "replay --quiet --trace " + dir.path();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {" --margin -1", "planner.margin = -1"},
      {" --max-margin -1", "planner.max_margin = -1"},
      {" --margin-step -0.1", "planner.margin_step = -0.1"},
      {" --balance-band -0.1", "planner.balance_band = -0.1"},
      {" --min-risk-p50-share 1.5", "planner.min_risk_p50_share = 1.5"},
      {" --donor-rule bogus", "must be one of peak, expected-unmet, peak-then-expected-unmet"},
      {" --same-role-cooldown -5", "planner.same_role_cooldown_ns = -5e+09"},
      {" --horizon 0", "planner.horizon_steps = 0"},
      {" --threshold-upper -0.5", "--threshold-upper/--threshold-target"},
      {" --forecast-recent-quantile-rate -1", "--forecast-recent-quantile-rate: Value -1"},
      {" --forecast-recent-quantile-rate nan", "'nan'"},
      {" --same-role-cooldown 1e12", "--same-role-cooldown value '1e+12'"},
      {" --steps -1", "'-1'"},
      {" --warmup 010", "'010'"},
      {" --horizon 0x10", "'0x10'"},
  };
  for (const auto& [option, message] : cases) {
    auto result = runAtoll(replay + option);
    EXPECT_NE(result.exitCode, 0) << option;
    EXPECT_NE(result.err.find(message), std::string::npos) << option << ": " << result.err;
    EXPECT_EQ(result.err.find("reading"), std::string::npos) << option << ": " << result.err;
  }
}

}  // namespace

}  // namespace Atoll
