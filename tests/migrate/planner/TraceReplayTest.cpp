// The replay's input parsing, the simulated host, and the replay itself on a
// constructed trace whose periodic bursts the forecaster can see coming.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "migrate/planner/Decision.h"
#include "migrate/planner/TraceReplay.h"

namespace Atoll::planner {
namespace {

TEST(TraceSet, ParsesAWideDayAndNamesBadValues) {
  auto table = parseWideCsv("step_5min,a,b\n0,10,20\n1,30,40\n", "day.csv");
  ASSERT_TRUE(table) << table.error().message();
  EXPECT_EQ(table->names, (std::vector<std::string>{"a", "b"}));
  EXPECT_FLOAT_EQ(table->cpuCores[1][1], 0.4f);
  auto bad = parseWideCsv("step_5min,a,b\n0,10,x\n", "day.csv");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("day.csv:2"), std::string::npos);
  EXPECT_NE(bad.error().message().find("'x'"), std::string::npos);
  EXPECT_FALSE(parseWideCsv("time,a\n0,1\n", "day.csv"));
  EXPECT_FALSE(parseWideCsv("step_5min,a,b\n0,10\n", "day.csv"));
}

TEST(TraceSet, JoinsDaysBySlot) {
  WideTable d1{{"x", "y", "z"}, {{0.1f, 0.2f}, {0.3f, 0.4f}, {0.5f, 0.6f}}};
  WideTable d2{{"p", "q"}, {{1.0f, 1.0f}, {2.0f, 2.0f}}};
  TraceSet set = joinWideDays({d1, d2});
  ASSERT_EQ(set.vms.size(), 2u);  // slots present on every day
  EXPECT_EQ(set.steps, 4u);
  EXPECT_FLOAT_EQ(set.vms[1].cpuCores[3], 2.0f);
}

TEST(TraceSet, BinsBitbrainsSamplesOntoFiveMinutes) {
  const std::string header =
      "Timestamp [ms];\tCPU cores;\tCPU capacity provisioned [MHZ];\tCPU usage [MHZ];\tCPU "
      "usage [%];\tMemory capacity provisioned [KB];\tMemory usage [KB];\tDisk read "
      "throughput [KB/s];\tDisk write throughput [KB/s];\tNetwork received throughput "
      "[KB/s];\tNetwork transmitted throughput [KB/s]\n";
  auto samples = parseBitbrainsCsv(header +
                                       "600;\t4;\t8000;\t2000;\t25;\t0;\t1024;\t0;\t0;\t0;\t0\n"
                                       "700;\t4;\t8000;\t6000;\t75;\t0;\t1024;\t0;\t0;\t0;\t0\n"
                                       "1500;\t4;\t8000;\t4000;\t50;\t0;\t2048;\t0;\t0;\t0;\t0\n",
                                   "vm.csv");
  ASSERT_TRUE(samples) << samples.error().message();
  EXPECT_FLOAT_EQ(samples->cpuCores[0], 1.0f);  // 2000 MHz of 2000 MHz per core
  TraceSet set = binBitbrains({"vm"}, {*samples});
  ASSERT_EQ(set.steps, 4u);                       // bins at 600, 900, 1200, 1500
  EXPECT_FLOAT_EQ(set.vms[0].cpuCores[0], 2.0f);  // mean of 1 and 3 cores
  EXPECT_FLOAT_EQ(set.vms[0].cpuCores[1], 2.0f);  // empty bin repeats
  EXPECT_FLOAT_EQ(set.vms[0].cpuCores[3], 2.0f);
  EXPECT_FLOAT_EQ(set.vms[0].memoryBytes[3], 2048.0f * 1024);
  EXPECT_FALSE(parseBitbrainsCsv(header + "600;\t4;\t-1;\t0;\t0;\t0;\t0;\t0;\t0;\t0;\t0\n", "v"));
}

TEST(SimulatedHost, ParsesSpecsAndRejectsBadOnes) {
  auto spec = parseHostSpec("cpus=32,nodes=2,islands=3,smt=2,load=0.7");
  ASSERT_TRUE(spec) << spec.error().message();
  EXPECT_EQ(spec->cpus, 32u);
  EXPECT_EQ(spec->smt, 2u);
  EXPECT_DOUBLE_EQ(spec->load, 0.7);
  for (const char* bad : {"cpus=abc", "cpus=30,nodes=4", "islands=0", "colour=blue", "cpus",
                          "load=-1", "cpus=4,islands=4"}) {
    auto parsed = parseHostSpec(bad);
    EXPECT_FALSE(parsed) << bad;
  }
  auto unknown = parseHostSpec("colour=blue");
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message().find("colour=blue"), std::string::npos);
  auto seeded = parseHostSpec("cpus=32,nodes=2,islands=3,seed=17");
  ASSERT_TRUE(seeded) << seeded.error().message();
  EXPECT_EQ(seeded->seed, 17u);
  EXPECT_NE(seeded->describe().find(",seed=17"), std::string::npos);
  // Without a seed the description reads as it always has.
  EXPECT_EQ(spec->describe().find("seed"), std::string::npos);
  EXPECT_FALSE(parseHostSpec("seed=-3"));
}

// A seed draws another host from the same traces: other VMs taken and other
// islands; no seed keeps the placement by the names' own hashes.
TEST(SimulatedHost, SeedDrawsAnotherPlacementFromTheSameTraces) {
  TraceSet traces;
  traces.source = "planetlab";
  traces.steps = 4;
  for (int i = 0; i < 60; ++i)
    traces.vms.push_back({"vm" + std::to_string(i), std::vector<float>(4, 0.5f + 0.01f * i), {}});
  auto placement = [&](const std::string& spec) {
    ReplayOptions options;
    options.host = parseHostSpec(spec).value();
    options.policies = {ReplayPolicy::Static};
    options.warmupSteps = 1;
    auto report = runTraceReplay(traces, options);
    EXPECT_TRUE(report) << report.error().message();
    return report ? report->vmsPerIsland : std::vector<size_t>{};
  };
  const auto unseeded = placement("cpus=16,nodes=1,islands=3,vms=40");
  std::vector<size_t> byName(3, 0);
  std::vector<std::pair<uint64_t, std::string>> order;
  for (const auto& vm : traces.vms) order.emplace_back(fnv1a(vm.name), vm.name);
  std::sort(order.begin(), order.end());
  for (size_t i = 0; i < 40; ++i) ++byName[fnv1a("island:" + order[i].second) % 3];
  EXPECT_EQ(unseeded, byName);
  EXPECT_EQ(placement("cpus=16,nodes=1,islands=3,vms=40,seed=0"), unseeded);
  const auto seeded = placement("cpus=16,nodes=1,islands=3,vms=40,seed=5");
  EXPECT_EQ(seeded, placement("cpus=16,nodes=1,islands=3,vms=40,seed=5"));
  bool anyDiffers = seeded != unseeded;
  for (uint64_t seed = 6; seed < 10 && !anyDiffers; ++seed)
    anyDiffers =
        placement("cpus=16,nodes=1,islands=3,vms=40,seed=" + std::to_string(seed)) != unseeded;
  EXPECT_TRUE(anyDiffers);
}

// Seeds give unrelated island maps: for no two seeds is one map the other
// with the islands relabelled (a salt in FNV-1a's input would do that, as
// its low bits follow the low bits of each byte alone).
TEST(SimulatedHost, SeedsGiveUnrelatedIslandMaps) {
  constexpr size_t kNames = 400, kIslands = 4;
  for (uint64_t a = 1; a <= 8; ++a) {
    for (uint64_t b = a + 1; b <= 9; ++b) {
      size_t together[kIslands][kIslands] = {};
      for (size_t i = 0; i < kNames; ++i) {
        const std::string name = "island:slot" + std::to_string(i) + ":vm";
        ++together[seededHash(name, a) % kIslands][seededHash(name, b) % kIslands];
      }
      // Names that a best relabelling would keep in the same island: about
      // a third for unrelated maps, all of them for a relabelled one.
      size_t kept = 0;
      for (const auto& row : together) kept += *std::max_element(row, row + kIslands);
      EXPECT_LT(kept, kNames / 2) << "seeds " << a << " and " << b;
    }
  }
  EXPECT_EQ(seededHash("island:vm", 0), fnv1a("island:vm"));
}

TEST(SimulatedHost, IslandsSplitTheHostInWholeCoresLeavingTheHostACore) {
  auto spec = parseHostSpec("cpus=32,nodes=2,islands=3,smt=2");
  ASSERT_TRUE(spec);
  auto topology = simulatedTopology(*spec);
  ASSERT_TRUE(topology) << topology.error().message();
  EXPECT_EQ(topology->cpus().size(), 32u);
  EXPECT_EQ(topology->nodes().size(), 2u);
  auto islands = simulatedIslands(*spec, *topology);
  ASSERT_TRUE(islands) << islands.error().message();
  ASSERT_EQ(islands->size(), 3u);
  for (const auto& island : *islands) EXPECT_EQ(island.cpus.size(), 10u);  // (16 - 1) / 3 cores
}

TEST(ReplayPolicies, ParsesListsAndNamesUnknownOnes) {
  auto all = parsePolicies("atoll,threshold,static");
  ASSERT_TRUE(all);
  EXPECT_EQ(all->size(), 3u);
  auto bound = parsePolicies("atoll-hindsight,atoll");
  ASSERT_TRUE(bound);
  EXPECT_EQ(*bound, (std::vector<ReplayPolicy>{ReplayPolicy::AtollHindsight, ReplayPolicy::Atoll}));
  EXPECT_EQ(policyName(ReplayPolicy::AtollHindsight), "atoll-hindsight");
  auto bad = parsePolicies("atoll,magic");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("magic"), std::string::npos);
}

// A planner policy's per-step verdicts in the JSON: one array per island as
// long as the replay, every index naming "none" or a rule, and the verdicts
// in force at the overloaded scored steps adding up to the report's
// overloaded island-steps by verdict. Returns how many overloaded steps
// followed a verdict other than "none".
size_t checkVerdictTimeline(const nlohmann::json& report, size_t policy) {
  const nlohmann::json& p = report["policies"][policy];
  EXPECT_TRUE(p.contains("verdicts") && p.contains("verdict_names")) << p["policy"];
  if (!p.contains("verdicts") || !p.contains("verdict_names")) return 0;
  const auto names = p["verdict_names"].get<std::vector<std::string>>();
  std::vector<std::string> known{"none"};
  for (int r = int(Rule::BenefitExceedsCost); r <= int(Rule::StaleForecast); ++r)
    known.emplace_back(ruleName(Rule(r)));
  for (const auto& name : names)
    EXPECT_NE(std::find(known.begin(), known.end(), name), known.end()) << name;
  const size_t steps = report["steps"].get<size_t>();
  const size_t warmup = report["warmup_steps"].get<size_t>();
  EXPECT_EQ(p["verdicts"].size(), report["islands"].size());
  std::map<std::string, size_t> overloadAfter;
  size_t afterAVerdict = 0;
  for (size_t i = 0; i < p["verdicts"].size(); ++i) {
    const auto verdicts = p["verdicts"][i].get<std::vector<size_t>>();
    EXPECT_EQ(verdicts.size(), steps);
    if (verdicts.size() != steps) continue;
    for (size_t t = 0; t < steps; ++t) {
      EXPECT_LT(verdicts[t], names.size()) << "island " << i << " step " << t;
      if (verdicts[t] >= names.size()) return 0;
      if (t < warmup) {
        EXPECT_EQ(names[verdicts[t]], "none") << "no pass before the warm-up ends";
        continue;
      }
      if (p["demand"][i][t].get<float>() <= p["capacity"][i][t].get<float>()) continue;
      ++overloadAfter[names[verdicts[t]]];
      if (names[verdicts[t]] != "none") ++afterAVerdict;
    }
  }
  EXPECT_EQ(overloadAfter, (p["overload_after_verdict"].get<std::map<std::string, size_t>>()));
  return afterAVerdict;
}

// Two islands of 7 CPUs. Each day island A bursts from 2 to 8 cores for two
// hours at 04:00 and island B does the same at 16:00: CPUs must shuttle
// between them twice a day.
class PeriodicBurstReplay : public ::testing::Test {
 protected:
  static constexpr size_t kDays = 5;
  static constexpr size_t kBurstA = 48;   // 04:00
  static constexpr size_t kBurstB = 192;  // 16:00
  static constexpr size_t kBurstSteps = 24;

  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("atoll-replay-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    // Four VMs per island, each a quarter of its island's demand. The
    // PlanetLab layout names column k "slot<k>:<name>"; names are chosen so
    // the replay's hash of that puts columns 0-3 in island 0, 4-7 in 1.
    std::vector<std::string> a, b;
    for (size_t column = 0, i = 0; column < 8; ++i) {
      const std::string name = "vm" + std::to_string(i);
      const size_t island = fnv1a("island:slot" + std::to_string(column) + ":" + name) % 2;
      if (island != (column < 4 ? 0u : 1u)) continue;
      (column < 4 ? a : b).push_back(name);
      ++column;
    }
    for (size_t day = 0; day < kDays; ++day) {
      std::ofstream out(dir_ / ("day" + std::to_string(day) + ".csv"));
      out << "step_5min";
      for (const auto& n : a) out << "," << n;
      for (const auto& n : b) out << "," << n;
      out << "\n";
      for (size_t s = 0; s < 288; ++s) {
        auto percent = [&](size_t start) {
          const bool burst = s >= start && s < start + kBurstSteps;
          return burst ? 200 : 50;  // 2 or 0.5 cores per VM
        };
        out << s;
        for (size_t i = 0; i < a.size(); ++i) out << "," << percent(kBurstA);
        for (size_t i = 0; i < b.size(); ++i) out << "," << percent(kBurstB);
        out << "\n";
      }
    }
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
};

TEST_F(PeriodicBurstReplay, AtollResizesBeforeTheBurstThresholdAfter) {
  auto traces = readTraceDir(dir_.string());
  ASSERT_TRUE(traces) << traces.error().message();
  ASSERT_EQ(traces->vms.size(), 8u);
  ASSERT_EQ(traces->steps, kDays * 288);
  ReplayOptions options;
  auto host = parseHostSpec("cpus=16,nodes=1,islands=2,vms=8");
  ASSERT_TRUE(host);
  options.host = *host;
  options.warmupSteps = 2 * 288;
  options.planner.allowVmMoves = false;  // resizes only: moves are the next test's
  auto report = runTraceReplay(*traces, options);
  ASSERT_TRUE(report) << report.error().message();
  ASSERT_EQ(report->policies.size(), 3u);
  const PolicyReport& atoll = report->policies[0];
  const PolicyReport& threshold = report->policies[1];
  const PolicyReport& fixed = report->policies[2];
  ASSERT_EQ(atoll.policy, ReplayPolicy::Atoll);
  ASSERT_EQ(threshold.policy, ReplayPolicy::Threshold);
  EXPECT_TRUE(fixed.actions.empty());
  EXPECT_GT(fixed.overloadVmMinutes, 0);

  // On the last day, the first action giving island A CPUs: atoll's before
  // the burst starts, threshold's only once it has been seen.
  const std::string islandA = report->islands[0];
  const size_t lastDay = (kDays - 1) * 288;
  auto firstGrowth = [&](const PolicyReport& p) -> long {
    for (const auto& action : p.actions)
      if (action.step >= lastDay && action.to == islandA) return long(action.step - lastDay);
    return -1;
  };
  const long atollStep = firstGrowth(atoll);
  const long thresholdStep = firstGrowth(threshold);
  ASSERT_GE(atollStep, 0) << formatReplayReport(*report);
  ASSERT_GE(thresholdStep, 0) << formatReplayReport(*report);
  EXPECT_LE(atollStep, long(kBurstA)) << formatReplayReport(*report);
  EXPECT_GT(thresholdStep, long(kBurstA));
  // Capacity was in place when the burst arrived: no overload then.
  EXPECT_GE(atoll.capacity[0][lastDay + kBurstA], 8.0f);
  EXPECT_LT(atoll.overloadVmMinutes, 0.7 * threshold.overloadVmMinutes)
      << formatReplayReport(*report);
  EXPECT_LE(atoll.actions.size(), threshold.actions.size() + 2) << formatReplayReport(*report);

  // The SVG and the JSON carry every policy.
  const std::string svg = renderReplaySvg(*report);
  EXPECT_NE(svg.find("<svg"), std::string::npos);
  EXPECT_NE(svg.find("threshold"), std::string::npos);
  auto json = toJson(*report);
  EXPECT_EQ(json["policies"].size(), 3u);
  EXPECT_EQ(json["policies"][0]["policy"], "atoll");
  // ... with every island's timeline, for analysing where policies differ.
  ASSERT_EQ(json["demand"].size(), report->islands.size());
  EXPECT_EQ(json["demand"][0].size(), report->steps);
  ASSERT_EQ(json["policies"][1]["capacity"].size(), report->islands.size());
  EXPECT_EQ(json["policies"][1]["capacity"][0].size(), report->steps);
  EXPECT_EQ(json["policies"][1]["capacity"][0][lastDay + kBurstA].get<float>(),
            threshold.capacity[0][lastDay + kBurstA]);
  // Every overloaded island-step of atoll is attributed to a verdict.
  size_t attributed = 0;
  for (const auto& [rule, count] : atoll.overloadAfterVerdict) attributed += count;
  EXPECT_DOUBLE_EQ(double(attributed) * kTraceStepSeconds / 60.0, atoll.overloadIslandMinutes);
  // ... and each step's verdict is in the JSON, for atoll and not for threshold.
  checkVerdictTimeline(json, 0);
  EXPECT_FALSE(json["policies"][1].contains("verdicts"));
}

// When resizes cannot relieve an island (here one CPU per resize against
// bursts of six cores), the planner moves VMs to the island with room; the
// replay executes the moves and scores each policy on its own placement.
TEST_F(PeriodicBurstReplay, AtollMovesVmsWhenResizesCannotRelieve) {
  auto traces = readTraceDir(dir_.string());
  ASSERT_TRUE(traces) << traces.error().message();
  ReplayOptions options;
  auto host = parseHostSpec("cpus=16,nodes=1,islands=2,vms=8");
  ASSERT_TRUE(host);
  options.host = *host;
  options.warmupSteps = 2 * 288;
  options.planner.maxCpusPerResize = 1;
  auto report = runTraceReplay(*traces, options);
  ASSERT_TRUE(report) << report.error().message();
  const PolicyReport& atoll = report->policies[0];
  const PolicyReport& threshold = report->policies[1];
  ASSERT_EQ(atoll.policy, ReplayPolicy::Atoll);
  EXPECT_GT(atoll.vmMoves, 0u) << formatReplayReport(*report);
  EXPECT_LT(atoll.overloadVmMinutes, threshold.overloadVmMinutes) << formatReplayReport(*report);
  // Moves conserve demand: at every step the islands' demand under atoll's
  // placement adds up to the host's.
  for (size_t t = 0; t < report->steps; ++t) {
    double moved = 0, initial = 0;
    for (size_t i = 0; i < report->islands.size(); ++i) {
      moved += atoll.demand[i][t];
      initial += report->demand[i][t];
    }
    ASSERT_NEAR(moved, initial, 1e-3) << "step " << t;
  }
  // Each move names its VM and costs something.
  for (const auto& action : atoll.actions)
    if (action.cpus == 0) {
      EXPECT_FALSE(action.vm.empty());
      EXPECT_GT(action.costCoreSeconds, 0);
    }
}

// Two islands of 7 CPUs whose VMs run flat at 0.5 cores each, except once:
// on the last day island A's four VMs burst to 2 cores each (8 cores) for an
// hour. No history shows the burst coming, so only a planner that knows the
// future can have capacity in place when it starts.
class OneOffBurstReplay : public ::testing::Test {
 protected:
  static constexpr size_t kDays = 4;
  static constexpr size_t kBurst = (kDays - 1) * 288 + 150;  // 12:30 on the last day
  static constexpr size_t kBurstSteps = 12;

  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("atoll-hindsight-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    // Columns 0-3 hash to island 0 (A), 4-7 to island 1, as in the periodic
    // burst replay.
    std::vector<std::string> names;
    for (size_t column = 0, i = 0; column < 8; ++i) {
      const std::string name = "vm" + std::to_string(i);
      const size_t island = fnv1a("island:slot" + std::to_string(column) + ":" + name) % 2;
      if (island != (column < 4 ? 0u : 1u)) continue;
      names.push_back(name);
      ++column;
    }
    for (size_t day = 0; day < kDays; ++day) {
      std::ofstream out(dir_ / ("day" + std::to_string(day) + ".csv"));
      out << "step_5min";
      for (const auto& n : names) out << "," << n;
      out << "\n";
      for (size_t s = 0; s < 288; ++s) {
        const size_t step = day * 288 + s;
        const bool burst = step >= kBurst && step < kBurst + kBurstSteps;
        out << s;
        for (size_t column = 0; column < names.size(); ++column)
          out << "," << (burst && column < 4 ? 200 : 50);
        out << "\n";
      }
    }
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Result<ReplayReport> replay(bool allowVmMoves, unsigned maxCpusPerResize) {
    auto traces = readTraceDir(dir_.string());
    if (!traces) return traces.error();
    ReplayOptions options;
    options.host = parseHostSpec("cpus=16,nodes=1,islands=2,vms=8").value();
    options.policies = {ReplayPolicy::AtollHindsight, ReplayPolicy::Atoll, ReplayPolicy::Threshold};
    options.warmupSteps = 2 * 288;
    options.planner.allowVmMoves = allowVmMoves;
    options.planner.maxCpusPerResize = maxCpusPerResize;
    return runTraceReplay(*traces, options);
  }

  std::filesystem::path dir_;
};

TEST_F(OneOffBurstReplay, HindsightResizesBeforeTheBurstTheForecastCannot) {
  auto report = replay(false, 16);
  ASSERT_TRUE(report) << report.error().message();
  ASSERT_EQ(report->policies.size(), 3u);
  const PolicyReport& hindsight = report->policies[0];
  const PolicyReport& atoll = report->policies[1];
  ASSERT_EQ(hindsight.policy, ReplayPolicy::AtollHindsight);
  ASSERT_EQ(atoll.policy, ReplayPolicy::Atoll);
  const std::string islandA = report->islands[0];
  auto firstGrowth = [&](const PolicyReport& p) -> long {
    for (const auto& action : p.actions)
      if (action.to == islandA) return long(action.step);
    return -1;
  };
  // Hindsight gives A the CPUs it needs before the burst's first step, and
  // they stay there for the whole burst.
  const long hindsightStep = firstGrowth(hindsight);
  ASSERT_GE(hindsightStep, 0) << formatReplayReport(*report);
  EXPECT_LE(hindsightStep, long(kBurst)) << formatReplayReport(*report);
  for (size_t t = kBurst; t < kBurst + kBurstSteps; ++t)
    EXPECT_GE(hindsight.capacity[0][t], hindsight.demand[0][t]) << "step " << t;
  EXPECT_EQ(hindsight.overloadVmMinutes, 0) << formatReplayReport(*report);
  // Nothing in the history announces the burst: the forecaster-fed planner
  // can only answer it once it has started, and leaves overload.
  const long atollStep = firstGrowth(atoll);
  EXPECT_TRUE(atollStep < 0 || atollStep > long(kBurst)) << formatReplayReport(*report);
  EXPECT_GT(atoll.overloadVmMinutes, 0) << formatReplayReport(*report);
  // The report names the bound, and the JSON carries its verdicts.
  EXPECT_NE(formatReplayReport(*report).find("atoll-hindsight/threshold overload time ratio"),
            std::string::npos);
  EXPECT_EQ(toJson(*report)["policies"][0]["policy"], "atoll-hindsight");
  // Per step: the burst came after passes that saw no risk.
  const auto json = toJson(*report);
  checkVerdictTimeline(json, 0);
  EXPECT_EQ(checkVerdictTimeline(json, 1), 0u);
}

// With a margin no benefit can meet, the planner sees the burst once it has
// started and declines every resize: the rest of the burst is overloaded
// after `below-margin` verdicts, and the per-step timeline shows them there.
TEST_F(OneOffBurstReplay, VerdictTimelineShowsTheDeclineBeforeTheOverloadedSteps) {
  auto traces = readTraceDir(dir_.string());
  ASSERT_TRUE(traces) << traces.error().message();
  ReplayOptions options;
  options.host = parseHostSpec("cpus=16,nodes=1,islands=2,vms=8").value();
  options.policies = {ReplayPolicy::Threshold, ReplayPolicy::Atoll};
  options.warmupSteps = 2 * 288;
  options.planner.allowVmMoves = false;
  options.planner.maxMargin = 1e9;
  options.planner.margin = 1e9;
  auto report = runTraceReplay(*traces, options);
  ASSERT_TRUE(report) << report.error().message();
  const PolicyReport& atoll = report->policies[1];
  ASSERT_EQ(atoll.policy, ReplayPolicy::Atoll);
  EXPECT_TRUE(atoll.actions.empty()) << formatReplayReport(*report);
  const auto json = toJson(*report);
  EXPECT_FALSE(json["policies"][0].contains("verdicts"));
  EXPECT_GT(checkVerdictTimeline(json, 1), 0u) << formatReplayReport(*report);
  // The burst's last step follows a pass that saw A at risk and declined.
  const auto& names = atoll.verdictNames;
  const uint8_t last = atoll.verdicts[0][kBurst + kBurstSteps - 1];
  ASSERT_LT(last, names.size());
  EXPECT_EQ(names[last], ruleName(Rule::BelowMargin)) << formatReplayReport(*report);
  EXPECT_GT(atoll.demand[0][kBurst + kBurstSteps - 1], atoll.capacity[0][kBurst + kBurstSteps - 1]);
}

// With VM moves allowed and one CPU per resize (too little relief), the
// hindsight planner moves one of A's VMs away before the burst, and is
// scored on its own placement: A's demand at the burst is what is left.
TEST_F(OneOffBurstReplay, HindsightMovesAVmAwayBeforeTheBurst) {
  auto report = replay(true, 1);
  ASSERT_TRUE(report) << report.error().message();
  const PolicyReport& hindsight = report->policies[0];
  ASSERT_EQ(hindsight.policy, ReplayPolicy::AtollHindsight);
  const std::string islandA = report->islands[0];
  long moved = -1;
  for (const auto& action : hindsight.actions)
    if (action.cpus == 0 && action.from == islandA) {
      moved = long(action.step);
      break;
    }
  ASSERT_GE(moved, 0) << formatReplayReport(*report);
  EXPECT_LE(moved, long(kBurst)) << formatReplayReport(*report);
  EXPECT_EQ(hindsight.overloadVmMinutes, 0) << formatReplayReport(*report);
  // The forecaster's island aggregates follow atoll's placement only; the
  // hindsight moves leave them alone, so atoll still sees four VMs in A.
  EXPECT_GT(report->policies[1].overloadVmMinutes, 0) << formatReplayReport(*report);
}

// The calibration of the island profiles atoll read: one sample per island
// and pass whose outcome is in the trace, shares that grow with the
// quantile, and the burst nothing announced shows as passes that saw no risk
// before an overload.
TEST_F(OneOffBurstReplay, IslandCalibrationScoresTheProfilesAtollRead) {
  auto report = replay(false, 16);
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_FALSE(report->policies[0].islandCalibration) << "hindsight reads no forecast";
  EXPECT_FALSE(report->policies[2].islandCalibration) << "threshold reads no forecast";
  ASSERT_TRUE(report->policies[1].islandCalibration);
  const IslandCalibration& c = *report->policies[1].islandCalibration;
  // Passes run at the end of steps warmup-1 .. steps-2; horizon k needs
  // step t + k in the trace. Both islands hold VMs throughout.
  const size_t steps = report->steps, warmup = report->warmupSteps;
  ASSERT_EQ(c.horizons.size(), 5u);
  const int expected[] = {1, 3, 6, 12, 24};
  for (size_t h = 0; h < c.horizons.size(); ++h) {
    const QuantileCoverage& q = c.horizons[h];
    EXPECT_EQ(q.horizon, expected[h]);
    EXPECT_EQ(q.samples, 2 * (steps - warmup - size_t(q.horizon) + 1)) << q.horizon;
    EXPECT_LE(q.coveredP50, q.coveredP95) << q.horizon;
    EXPECT_LE(q.coveredP95, q.coveredP99) << q.horizon;
    EXPECT_LE(q.coveredP99, 1.0);
    EXPECT_LE(q.meanP95Gap, q.meanP99Gap);
  }
  // Outside the burst the demand is flat, so the next step is covered at p99
  // almost always.
  EXPECT_GT(c.horizons[0].coveredP99, 0.9);
  EXPECT_EQ(c.peak.horizon, 12);
  EXPECT_EQ(c.peak.samples, 2 * (steps - warmup - 12 + 1));
  // The passes before the burst saw no risk, and A overloaded within their
  // horizon; most quiet passes were followed by none.
  EXPECT_GT(c.quietPasses, 0u);
  EXPECT_GT(c.quietThenOverloaded, 0.0);
  EXPECT_LT(c.quietThenOverloaded, 0.2);
  // Outside the burst the islands' p50 is 2 of 7 cores, below the planner's
  // p50 floor: the loaded island-steps are a subset, the burst's.
  ASSERT_EQ(c.loadedHorizons.size(), c.horizons.size());
  for (size_t h = 0; h < c.horizons.size(); ++h)
    EXPECT_LT(c.loadedHorizons[h].samples, c.horizons[h].samples / 10) << c.horizons[h].horizon;
  EXPECT_LT(c.loadedPeak.samples, c.peak.samples / 10);
  EXPECT_GT(c.loadedHorizons[0].samples, 0u) << "the forecast follows the burst once it runs";
  const auto json = toJson(*report);
  EXPECT_FALSE(json["policies"][0].contains("island_calibration"));
  const auto& j = json["policies"][1]["island_calibration"];
  EXPECT_EQ(j["horizons"].size(), 5u);
  EXPECT_EQ(j["peak"]["samples"].get<size_t>(), c.peak.samples);
  EXPECT_DOUBLE_EQ(j["horizons"][0]["covered_p99"].get<double>(), c.horizons[0].coveredP99);
  EXPECT_EQ(j["loaded"]["peak"]["samples"].get<size_t>(), c.loadedPeak.samples);
}

}  // namespace
}  // namespace Atoll::planner
