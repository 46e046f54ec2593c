#include "migrate/planner/TraceReplay.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <numeric>
#include <optional>

#include "forecast/Forecaster.h"
#include "migrate/planner/Contention.h"
#include "migrate/planner/Planner.h"
#include "numa/CpuSet.h"
#include "numa/Island.h"

namespace Atoll::planner {

namespace {

constexpr int64_t kStepNs = kTraceStepSeconds * 1'000'000'000LL;
constexpr double kStepMinutes = kTraceStepSeconds / 60.0;

std::string format(const char* fmt, auto... args) {
  char text[512];
  std::snprintf(text, sizeof text, fmt, args...);
  return text;
}

// An executed action of the planner whose realised relief is measured once
// its horizon has passed. A resize added `cores` to `island`; a move took VM
// `vm` from `island` to `target`.
struct PendingOutcome {
  uint64_t decision;
  size_t step;  // decided at the end of this step
  size_t island;
  double capacityBefore;
  double cores;
  std::optional<size_t> vm;
  size_t target = 0;
  double targetCapacity = 0;
};

// The horizons (steps ahead) at which the island profiles' calibration is
// measured: the next step to the longest the profiles reach with the donor's
// harm counted over the cooldown.
constexpr int kCalibrationHorizons[] = {1, 3, 6, 12, 24};

// Running counts behind one QuantileCoverage.
struct CoverageSums {
  size_t samples = 0, coveredP50 = 0, coveredP95 = 0, coveredP99 = 0;
  double p95Gap = 0, p99Gap = 0;

  void add(double actual, double p50, double p95, double p99, double capacity) {
    ++samples;
    coveredP50 += actual <= p50;
    coveredP95 += actual <= p95;
    coveredP99 += actual <= p99;
    p95Gap += (p95 - actual) / capacity;
    p99Gap += (p99 - actual) / capacity;
  }
  QuantileCoverage result(int horizon) const {
    QuantileCoverage out;
    out.horizon = horizon;
    out.samples = samples;
    if (samples == 0) return out;
    const double n = double(samples);
    out.coveredP50 = double(coveredP50) / n;
    out.coveredP95 = double(coveredP95) / n;
    out.coveredP99 = double(coveredP99) / n;
    out.meanP95Gap = p95Gap / n;
    out.meanP99Gap = p99Gap / n;
    return out;
  }
};

struct CalibrationSums {
  CoverageSums horizons[std::size(kCalibrationHorizons)];
  CoverageSums peak;
  CoverageSums loadedHorizons[std::size(kCalibrationHorizons)];
  CoverageSums loadedPeak;
  int peakHorizon = 0;
  size_t quietPasses = 0, quietThenOverloaded = 0;

  IslandCalibration result() const {
    IslandCalibration out;
    for (size_t h = 0; h < std::size(kCalibrationHorizons); ++h)
      if (horizons[h].samples > 0)
        out.horizons.push_back(horizons[h].result(kCalibrationHorizons[h]));
    out.peak = peak.result(peakHorizon);
    for (size_t h = 0; h < std::size(kCalibrationHorizons); ++h)
      if (horizons[h].samples > 0)  // aligned with `horizons`, possibly no sample
        out.loadedHorizons.push_back(loadedHorizons[h].result(kCalibrationHorizons[h]));
    out.loadedPeak = loadedPeak.result(peakHorizon);
    out.quietPasses = quietPasses;
    out.quietThenOverloaded =
        quietPasses > 0 ? double(quietThenOverloaded) / double(quietPasses) : 0;
    return out;
  }
};

struct PolicyState {
  ReplayPolicy policy;
  std::vector<numa::CpuList> cpus;  // per island
  std::vector<size_t> islandOf;     // per VM
  std::vector<int64_t> lastMoveNs;  // per VM
  std::vector<size_t> vmsIn;        // per island, now
  PolicyReport report;
  size_t overloadedSteps = 0;
  double depthSum = 0;
  // Planner policies: each its own planner (guards, budgets and outcome loop
  // follow its own actions), the latest pass's verdict per island (read when
  // the next step is scored) and the actions whose outcome is still to come.
  std::optional<Planner> planner;
  std::vector<uint8_t> verdict;  // indexes into report.verdictNames
  std::vector<PendingOutcome> pending;
  // `atoll` only: how its passes' island profiles covered what came.
  std::optional<CalibrationSums> calibration;
};

bool runsPlanner(ReplayPolicy policy) {
  return policy == ReplayPolicy::Atoll || policy == ReplayPolicy::AtollHindsight;
}

// The index of a verdict name in a policy's table, added when new (a handful
// of rule names at most, so a linear search and a byte per entry suffice).
uint8_t verdictIndex(std::vector<std::string>& names, std::string_view name) {
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return uint8_t(i);
  names.emplace_back(name);
  return uint8_t(names.size() - 1);
}

// A profile that knows the future: p50 = p95 = p99 = the actual demand at
// each of the `steps` steps after `step` (fewer near the trace's end), the
// demand being the sum of `series` (cores per step). No accuracy is tracked,
// so nothing scales a move's benefit by a coverage short of 95%.
void fillHindsightProfile(forecast::ProfileSnapshot& profile, uint64_t key, size_t step,
                          size_t totalSteps, int steps,
                          const std::vector<const std::vector<float>*>& series) {
  profile = forecast::ProfileSnapshot{};
  profile.key = key;
  profile.tick = step;
  profile.stepNs = kStepNs;
  profile.originStepNs = int64_t(step) * kStepNs;
  const size_t available = totalSteps - 1 - std::min(step, totalSteps - 1);
  profile.steps = uint32_t(std::min<size_t>(size_t(steps), available));
  for (uint32_t k = 0; k < profile.steps; ++k) {
    double sum = 0;
    for (const std::vector<float>* s : series) sum += (*s)[step + 1 + k];
    profile.p50[k] = profile.p95[k] = profile.p99[k] = float(sum);
  }
}

// Scores the island profiles a pass read at the end of step `t` against
// the demand that came: each island's members at the pass (`islandOf`, per
// chosen VM), summed over the steps after it, against its capacity then;
// the island-steps whose p50 reaches `loadedShare` of capacity also apart.
// `future` is scratch space.
void measureCalibration(CalibrationSums& sums, const std::vector<IslandState>& islands,
                        const std::vector<size_t>& islandOf, const TraceSet& traces,
                        const std::vector<size_t>& chosen, size_t t, int horizonSteps,
                        double riskThreshold, double loadedShare,
                        std::vector<std::vector<double>>& future) {
  const size_t remaining = traces.steps - 1 - std::min(t, traces.steps - 1);
  const size_t reach = std::min<size_t>(
      remaining,
      size_t(std::max(kCalibrationHorizons[std::size(kCalibrationHorizons) - 1], horizonSteps)));
  future.assign(islands.size(), std::vector<double>(reach + 1, 0));
  for (size_t v = 0; v < chosen.size(); ++v) {
    const std::vector<float>& cpu = traces.vms[chosen[v]].cpuCores;
    std::vector<double>& sum = future[islandOf[v]];
    for (size_t k = 1; k <= reach; ++k) sum[k] += cpu[t + k];
  }
  for (size_t i = 0; i < islands.size(); ++i) {
    const forecast::ProfileSnapshot& profile = islands[i].profile;
    const double capacity = double(islands[i].cpus.size());
    if (profile.steps == 0 || capacity <= 0) continue;
    const std::vector<double>& actual = future[i];
    for (size_t h = 0; h < std::size(kCalibrationHorizons); ++h) {
      const size_t k = size_t(kCalibrationHorizons[h]);
      if (k > reach || k > profile.steps) continue;
      const double p50 = profile.p50[k - 1], p95 = profile.p95[k - 1], p99 = profile.p99[k - 1];
      sums.horizons[h].add(actual[k], p50, p95, p99, capacity);
      if (p50 >= loadedShare * capacity)
        sums.loadedHorizons[h].add(actual[k], p50, p95, p99, capacity);
    }
    const size_t peakSteps = std::min<size_t>(size_t(horizonSteps), profile.steps);
    if (peakSteps == 0 || peakSteps > reach) continue;
    // The peaks and the risk as the planner reads them.
    const HorizonContention seen =
        horizonContention(profile, int(peakSteps), capacity, riskThreshold);
    const double actualPeak = *std::max_element(actual.begin() + 1, actual.begin() + 1 + peakSteps);
    sums.peakHorizon = int(peakSteps);
    sums.peak.add(actualPeak, seen.p50Peak, seen.p95Peak, seen.p99Peak, capacity);
    if (seen.p50Peak >= loadedShare * capacity)
      sums.loadedPeak.add(actualPeak, seen.p50Peak, seen.p95Peak, seen.p99Peak, capacity);
    if (seen.probability < riskThreshold) {
      ++sums.quietPasses;
      sums.quietThenOverloaded += actualPeak > capacity;
    }
  }
}

double excess(double demand, double capacity) {
  return std::max(0.0, demand - capacity);
}

// Moves `cpus` from island `from` to `to` in a policy's state.
void applyResize(PolicyState& state, size_t from, size_t to, const numa::CpuList& cpus) {
  state.cpus[from] = numa::differenceOf(state.cpus[from], cpus);
  state.cpus[to] = numa::unionOf(state.cpus[to], cpus);
}

}  // namespace

uint64_t fnv1a(std::string_view text) {
  uint64_t hash = 1469598103934665603ULL;
  for (unsigned char c : text) hash = (hash ^ c) * 1099511628211ULL;
  return hash;
}

uint64_t seededHash(std::string_view text, uint64_t seed) {
  if (seed == 0) return fnv1a(text);
  // SplitMix64's finaliser: FNV-1a's low bits depend only on the low bits of
  // each byte, so a salt in the text would give the island (a hash modulo a
  // small count) only a few distinct maps across seeds; mixed, every bit of
  // the result depends on every bit of the hash and the seed.
  auto mix = [](uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  return mix(fnv1a(text) ^ mix(seed * 0x9e3779b97f4a7c15ULL));
}

std::string_view policyName(ReplayPolicy policy) {
  switch (policy) {
    case ReplayPolicy::Static:
      return "static";
    case ReplayPolicy::Threshold:
      return "threshold";
    case ReplayPolicy::Atoll:
      return "atoll";
    case ReplayPolicy::AtollHindsight:
      return "atoll-hindsight";
  }
  return "static";
}

Result<std::vector<ReplayPolicy>> parsePolicies(std::string_view text) {
  std::vector<ReplayPolicy> out;
  while (!text.empty()) {
    const size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
    bool known = false;
    for (auto p : {ReplayPolicy::Atoll, ReplayPolicy::Threshold, ReplayPolicy::Static,
                   ReplayPolicy::AtollHindsight}) {
      if (item == policyName(p)) {
        if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
        known = true;
      }
    }
    if (!known)
      return Error::invalid("parse --policy", "--policy", std::string(item),
                            "unknown policy (atoll, threshold, static, atoll-hindsight)");
  }
  if (out.empty()) return Error::invalid("parse --policy", "--policy", "", "no policy given");
  return out;
}

Result<ReplayReport> runTraceReplay(const TraceSet& traces, const ReplayOptions& options) {
  auto topology = simulatedTopology(options.host);
  if (!topology) return topology.error();
  auto placed = simulatedIslands(options.host, *topology);
  if (!placed) return placed.error();
  const std::vector<numa::Island>& islands = *placed;
  const size_t islandCount = islands.size();
  if (std::string problem = options.planner.validate(); !problem.empty())
    return Error::invalid("configure planner", "planner", "", problem);
  if (traces.steps <= options.warmupSteps)
    return Error::invalid(
        "replay", traces.source, std::to_string(traces.steps),
        "the traces have no steps after the warm-up of " + std::to_string(options.warmupSteps));

  // VMs, in a fixed pseudo-random order, until their mean demand reaches the
  // load asked for (or the count asked for).
  double capacityTotal = 0;
  for (const auto& island : islands) capacityTotal += double(island.cpus.size());
  std::vector<size_t> order(traces.vms.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const uint64_t ha = seededHash(traces.vms[a].name, options.host.seed),
                   hb = seededHash(traces.vms[b].name, options.host.seed);
    return ha != hb ? ha < hb : traces.vms[a].name < traces.vms[b].name;
  });
  std::vector<size_t> chosen;
  double meanTotal = 0;
  for (size_t v : order) {
    if (options.host.vms > 0 ? chosen.size() >= options.host.vms
                             : meanTotal >= options.host.load * capacityTotal)
      break;
    const auto& cpu = traces.vms[v].cpuCores;
    double sum = 0;
    for (size_t t = 0; t < traces.steps; ++t) sum += cpu[t];
    meanTotal += sum / double(traces.steps);
    chosen.push_back(v);
  }
  std::vector<size_t> islandOf(chosen.size());
  ReplayReport report;
  report.source = traces.source;
  report.host = options.host.describe();
  report.steps = traces.steps;
  report.warmupSteps = options.warmupSteps;
  report.vmCount = chosen.size();
  report.vmsPerIsland.assign(islandCount, 0);
  for (const auto& island : islands) report.islands.push_back(island.name);
  report.demand.assign(islandCount, std::vector<float>(traces.steps, 0));
  for (size_t i = 0; i < chosen.size(); ++i) {
    const TraceVm& vm = traces.vms[chosen[i]];
    islandOf[i] = seededHash("island:" + vm.name, options.host.seed) % islandCount;
    ++report.vmsPerIsland[islandOf[i]];
    for (size_t t = 0; t < traces.steps; ++t) report.demand[islandOf[i]][t] += vm.cpuCores[t];
  }

  // The forecaster, as the daemon runs it: VM CPU series in, one island
  // series per island.
  forecast::ForecasterConfig fc;
  fc.stepNs = kStepNs;
  fc.profileSteps = std::max(options.planner.horizonSteps, 12);
  // A donor sized, or its harm counted, over the island cooldown reads that far ahead.
  if (options.planner.donorKeepsPeakOverCooldown || options.planner.donorHarmOverCooldown)
    fc.profileSteps = std::max<int>(
        fc.profileSteps,
        int(std::min<int64_t>(forecast::kMaxProfileSteps,
                              (options.planner.islandCooldownNs + kStepNs - 1) / kStepNs)));
  fc.maxSeries = chosen.size() + 16;
  fc.ringCapacity = std::max<size_t>(1024, chosen.size() * 2);
  if (options.forecastRecentQuantileRate)
    fc.model.tuning.recentQuantileRate = *options.forecastRecentQuantileRate;
  auto forecaster = forecast::Forecaster::create(fc);
  if (!forecaster)
    return Error::invalid("create forecaster", "replay", "", forecaster.error().message());
  forecast::Forecaster& f = *forecaster.value();
  std::vector<uint32_t> islandIds(islandCount);
  for (size_t i = 0; i < islandCount; ++i) {
    forecast::IslandSpec spec;
    spec.name = islands[i].name;
    spec.capacity = double(islands[i].cpus.size());
    for (size_t v = 0; v < chosen.size(); ++v)
      if (islandOf[v] == i) spec.members.push_back({uint32_t(v + 1), forecast::Metric::Cpu});
    if (spec.members.empty()) continue;  // an island without VMs never gets a profile
    auto id = f.defineIsland(spec);
    if (!id) return Error::invalid("define island", spec.name, "", id.error().message());
    islandIds[i] = id.value();
  }

  ThresholdPolicy threshold(options.threshold, options.planner);

  std::vector<PolicyState> states;
  for (ReplayPolicy p : options.policies) {
    PolicyState s;
    s.policy = p;
    s.islandOf = islandOf;
    s.lastMoveNs.assign(chosen.size(), kNeverNs);
    s.report.policy = p;
    for (const auto& island : islands) s.cpus.push_back(island.cpus);
    s.report.capacity.assign(islandCount, std::vector<float>(traces.steps, 0));
    s.report.demand.assign(islandCount, std::vector<float>(traces.steps, 0));
    if (runsPlanner(p)) {
      auto created = Planner::create(options.planner);
      if (!created) return created.error();
      s.planner.emplace(std::move(created.value()));
      if (p == ReplayPolicy::Atoll) s.calibration.emplace();
      const uint8_t none = verdictIndex(s.report.verdictNames, "none");
      s.verdict.assign(islandCount, none);
      s.report.verdicts.assign(islandCount, std::vector<uint8_t>(traces.steps, none));
    }
    states.push_back(std::move(s));
  }

  PlanInput input;
  input.host.topology = &topology.value();
  for (const auto& node : topology->nodes()) input.host.nodes.push_back({node.osIndex, node.cpus});
  input.islands.resize(islandCount);
  for (size_t i = 0; i < islandCount; ++i) input.islands[i].name = islands[i].name;
  input.vms.resize(chosen.size());
  for (size_t v = 0; v < chosen.size(); ++v) {
    input.vms[v].workload = uint32_t(v + 1);
    input.vms[v].name = traces.vms[chosen[v]].name;
    input.vms[v].flexibility =
        options.planner.allowVmMoves ? Flexibility::Flexible : Flexibility::Pinned;
  }
  std::vector<bool> islandDefined(islandCount, false);
  for (size_t v = 0; v < chosen.size(); ++v) islandDefined[islandOf[v]] = true;
  // After a VM move by `atoll`: the forecaster's aggregates of the two
  // islands follow their new members (an island left empty keeps its last
  // definition and gets no profile until a VM moves back in). The hindsight
  // policy reads no forecast, so its moves leave them alone.
  auto redefine = [&](const PolicyState& s, size_t i) -> Result<bool> {
    forecast::IslandSpec spec;
    spec.name = islands[i].name;
    spec.capacity = double(islands[i].cpus.size());
    for (size_t v = 0; v < chosen.size(); ++v)
      if (s.islandOf[v] == i) spec.members.push_back({uint32_t(v + 1), forecast::Metric::Cpu});
    if (spec.members.empty()) return true;
    auto id = islandDefined[i] ? f.redefineIsland(islandIds[i], spec) : f.defineIsland(spec);
    if (!id) return Error::invalid("redefine island", spec.name, "", id.error().message());
    islandIds[i] = id.value();
    islandDefined[i] = true;
    return true;
  };
  auto resizeCost = [&](size_t cpus, size_t from, size_t to) {
    return options.planner.cacheWarmupSecondsPerCpu * double(cpus) +
           options.planner.resizeDisruptionPerVm *
               double(report.vmsPerIsland[from] + report.vmsPerIsland[to]) +
           options.planner.resizeActionCpu;
  };

  // What a reader sees for a series without a profile (on the heap: a
  // snapshot is large).
  const auto noProfile = std::make_unique<forecast::ProfileSnapshot>();
  const int horizon = options.planner.horizonSteps;
  // The hindsight profiles reach as far as the forecaster's do.
  const int hindsightSteps = fc.profileSteps;
  std::vector<const std::vector<float>*> members;
  std::vector<std::vector<double>> calibrationScratch;
  size_t nextProgress = traces.steps / 10;
  forecast::SampleRing& ring = f.ring(0);
  for (size_t t = 0; t < traces.steps; ++t) {
    const int64_t stepStart = int64_t(t) * kStepNs;
    for (size_t v = 0; v < chosen.size(); ++v) {
      forecast::Sample sample{{uint32_t(v + 1), forecast::Metric::Cpu},
                              stepStart + 1'000'000'000LL,
                              double(traces.vms[chosen[v]].cpuCores[t])};
      if (!ring.tryPush(sample)) {
        f.tick(stepStart + 1'000'000'000LL);  // drain, then retry once
        (void)ring.tryPush(sample);
      }
    }
    f.tick(stepStart + kStepNs);

    // Score step t under the placement and capacities in force during it.
    for (PolicyState& s : states) {
      s.vmsIn.assign(islandCount, 0);
      for (size_t v = 0; v < chosen.size(); ++v) {
        s.report.demand[s.islandOf[v]][t] += traces.vms[chosen[v]].cpuCores[t];
        ++s.vmsIn[s.islandOf[v]];
      }
      for (size_t i = 0; i < islandCount; ++i) {
        const double capacity = double(s.cpus[i].size());
        s.report.capacity[i][t] = float(capacity);
        if (s.planner) s.report.verdicts[i][t] = s.verdict[i];
        if (t < options.warmupSteps) continue;
        const double demand = s.report.demand[i][t];
        if (demand > capacity) {
          const double depth = (demand - capacity) / capacity;
          s.report.overloadVmMinutes += double(s.vmsIn[i]) * kStepMinutes;
          s.report.overloadIslandMinutes += kStepMinutes;
          s.report.unmetCoreMinutes += (demand - capacity) * kStepMinutes;
          s.report.maxDepth = std::max(s.report.maxDepth, depth);
          s.depthSum += depth;
          ++s.overloadedSteps;
          if (s.planner) ++s.report.overloadAfterVerdict[s.report.verdictNames[s.verdict[i]]];
        }
      }
    }

    // Outcomes of the planners' actions whose window has passed.
    for (PolicyState& s : states) {
      if (!s.planner) continue;
      std::erase_if(s.pending, [&](const PendingOutcome& p) {
        if (t < p.step + size_t(horizon)) return false;
        const auto& demand = s.report.demand;
        double realised = 0;
        for (size_t u = p.step + 1; u <= p.step + size_t(horizon); ++u) {
          const double d = demand[p.island][u];
          if (p.vm) {
            // The source without the VM, less what the VM added to the target.
            const double vmCores = traces.vms[chosen[*p.vm]].cpuCores[u];
            const double dt = demand[p.target][u];
            realised += (excess(d + vmCores, p.capacityBefore) - excess(d, p.capacityBefore) -
                         (excess(dt, p.targetCapacity) - excess(dt - vmCores, p.targetCapacity))) *
                        double(kTraceStepSeconds);
          } else {
            realised += (excess(d, p.capacityBefore) - excess(d, p.capacityBefore + p.cores)) *
                        double(kTraceStepSeconds);
          }
        }
        s.planner->recordOutcome(p.decision, realised, stepStart + kStepNs);
        return true;
      });
    }

    // Decisions at the end of step t take effect from step t + 1.
    if (t + 1 >= options.warmupSteps && t + 1 < traces.steps) {
      const int64_t nowNs = stepStart + kStepNs;
      for (PolicyState& s : states) {
        if (s.planner) {
          // Only the profiles differ between the two planner policies:
          // the forecaster's for atoll, the trace's future for hindsight.
          const bool hindsight = s.policy == ReplayPolicy::AtollHindsight;
          input.nowNs = nowNs;
          for (size_t i = 0; i < islandCount; ++i) {
            IslandState& is = input.islands[i];
            is.cpus = s.cpus[i];
            is.memNodes = numa::nodesOfCpus(*topology, is.cpus);
            is.observedCores = s.report.demand[i][t];
            if (s.vmsIn[i] == 0) {
              is.profile = *noProfile;
            } else if (hindsight) {
              members.clear();
              for (size_t v = 0; v < chosen.size(); ++v)
                if (s.islandOf[v] == i) members.push_back(&traces.vms[chosen[v]].cpuCores);
              fillHindsightProfile(is.profile, i, t, traces.steps, hindsightSteps, members);
              is.profile.capacity = double(is.cpus.size());
            } else if (!islandDefined[i] || !f.readIsland(islandIds[i], is.profile)) {
              is.profile = *noProfile;
            }
          }
          for (size_t v = 0; v < chosen.size(); ++v) {
            VmState& vm = input.vms[v];
            const TraceVm& trace = traces.vms[chosen[v]];
            vm.island = islands[s.islandOf[v]].name;
            vm.observedCores = trace.cpuCores[t];
            vm.residentBytes = uint64_t(trace.memoryBytes.empty() ? options.defaultVmMemoryBytes
                                                                  : trace.memoryBytes[t]);
            vm.lastMoveNs = s.lastMoveNs[v];
            if (!options.planner.allowVmMoves) continue;
            if (hindsight) {
              members.assign(1, &trace.cpuCores);
              fillHindsightProfile(vm.demand, v + 1, t, traces.steps, hindsightSteps, members);
            } else if (!f.readProfile({uint32_t(v + 1), forecast::Metric::Cpu}, vm.demand)) {
              vm.demand = *noProfile;
            }
          }
          if (s.calibration)
            measureCalibration(*s.calibration, input.islands, s.islandOf, traces, chosen, t,
                               horizon, options.planner.riskThreshold,
                               options.planner.minRiskP50Share, calibrationScratch);
          PlanResult result = s.planner->plan(input);
          s.verdict.assign(islandCount, verdictIndex(s.report.verdictNames, "none"));
          for (const Decision& d : result.decisions) {
            const std::string& relieved =
                d.action == ActionKind::MoveVm ? d.fromIsland : d.toIsland;
            for (size_t i = 0; i < islandCount; ++i)
              if (islands[i].name == relieved)
                s.verdict[i] = verdictIndex(s.report.verdictNames, ruleName(d.rule));
          }
          for (const Decision& d : result.decisions) {
            if (!d.execute || d.action == ActionKind::None) continue;
            size_t from = 0, to = 0;
            for (size_t i = 0; i < islandCount; ++i) {
              if (islands[i].name == d.fromIsland) from = i;
              if (islands[i].name == d.toIsland) to = i;
            }
            if (d.action == ActionKind::MoveVm) {
              const size_t v = d.vm - 1;
              s.islandOf[v] = to;
              s.lastMoveNs[v] = nowNs;
              if (!hindsight)
                for (size_t i : {from, to})
                  if (auto done = redefine(s, i); !done) return done.error();
              s.planner->reportCompleted(d.id, nowNs);
              s.report.actions.push_back(
                  {t + 1, d.fromIsland, d.toIsland, 0, d.vmName, d.cost.total(), d.reason});
              s.report.moveCpuSeconds += d.cost.total();
              ++s.report.vmMoves;
              if (t + size_t(horizon) < traces.steps)
                s.pending.push_back({d.id, t, from, double(s.cpus[from].size()), 0, v, to,
                                     double(s.cpus[to].size())});
              continue;
            }
            const double before = double(s.cpus[to].size());
            applyResize(s, from, to, d.cpusMoved);
            s.planner->reportCompleted(d.id, nowNs);
            s.report.actions.push_back({t + 1, d.fromIsland, d.toIsland,
                                        unsigned(d.cpusMoved.size()), "", d.cost.total(),
                                        d.reason});
            s.report.moveCpuSeconds += d.cost.total();
            if (t + size_t(horizon) < traces.steps)
              s.pending.push_back({d.id, t, to, before, double(d.cpusMoved.size())});
          }
        } else if (s.policy == ReplayPolicy::Threshold) {
          std::vector<ThresholdIsland> view(islandCount);
          for (size_t i = 0; i < islandCount; ++i)
            view[i] = {islands[i].name, s.cpus[i], report.demand[i][t]};
          for (const ThresholdResize& r : threshold.decide(nowNs, view, &topology.value())) {
            applyResize(s, r.from, r.to, r.cpus);
            const double cost = resizeCost(r.cpus.size(), r.from, r.to);
            s.report.actions.push_back({t + 1, islands[r.from].name, islands[r.to].name,
                                        unsigned(r.cpus.size()), "", cost,
                                        "observed utilisation above threshold"});
            s.report.moveCpuSeconds += cost;
          }
        }
      }
    }
    if (options.progress && nextProgress > 0 && t + 1 >= nextProgress && t + 1 < traces.steps) {
      options.progress(format("replay: step %zu of %zu", t + 1, traces.steps));
      nextProgress += traces.steps / 10;
    }
  }
  for (PolicyState& s : states) {
    s.report.meanDepth = s.overloadedSteps > 0 ? s.depthSum / double(s.overloadedSteps) : 0;
    if (s.planner) {
      s.report.finalMargin = s.planner->margin();
      s.report.tuningChanges = s.planner->tuning().size();
    }
    if (s.calibration) s.report.islandCalibration = s.calibration->result();
    report.policies.push_back(std::move(s.report));
  }
  return report;
}

std::string formatReplayReport(const ReplayReport& report) {
  std::string out =
      format("trace %s: %zu VMs on %zu islands, %zu steps of 5 min (%zu warm-up), host %s\n",
             report.source.c_str(), report.vmCount, report.islands.size(), report.steps,
             report.warmupSteps, report.host.c_str());
  // Steps where the whole host's demand exceeds all islands' capacity: no
  // placement of CPUs between islands avoids those.
  size_t saturated = 0;
  for (size_t t = report.warmupSteps; t < report.steps; ++t) {
    double demand = 0, capacity = 0;
    for (size_t i = 0; i < report.islands.size(); ++i) {
      demand += report.demand[i][t];
      if (!report.policies.empty()) capacity += report.policies.front().capacity[i][t];
    }
    if (demand > capacity) ++saturated;
  }
  out +=
      format("host saturated (total demand > total island capacity) in %zu of %zu scored steps\n",
             saturated, report.steps - report.warmupSteps);
  out += format("%-15s %16s %14s %14s %10s %10s %8s %9s %12s\n", "policy", "overload_vm_min",
                "island_min", "unmet_core_min", "mean_depth", "max_depth", "actions", "vm_moves",
                "move_cpu_s");
  for (const auto& p : report.policies)
    out += format("%-15s %16.0f %14.0f %14.1f %10.3f %10.3f %8zu %9zu %12.1f\n",
                  std::string(policyName(p.policy)).c_str(), p.overloadVmMinutes,
                  p.overloadIslandMinutes, p.unmetCoreMinutes, p.meanDepth, p.maxDepth,
                  p.actions.size(), p.vmMoves, p.moveCpuSeconds);
  const PolicyReport* reactive = nullptr;
  for (const auto& p : report.policies)
    if (p.policy == ReplayPolicy::Threshold) reactive = &p;
  for (const auto& p : report.policies) {
    if (!runsPlanner(p.policy)) continue;
    const std::string name(policyName(p.policy));
    if (reactive && reactive->overloadVmMinutes > 0)
      out += format("%s/threshold overload time ratio: %.3f (actions %zu vs %zu)\n", name.c_str(),
                    p.overloadVmMinutes / reactive->overloadVmMinutes, p.actions.size(),
                    reactive->actions.size());
    if (!p.overloadAfterVerdict.empty()) {
      out += name + " overloaded island-steps by the previous pass's verdict on the island:";
      for (const auto& [rule, count] : p.overloadAfterVerdict)
        out += format(" %s %zu", rule.c_str(), count);
      out += "\n";
    }
    out += format("%s outcome loop: margin %.2f after %zu tuning changes\n", name.c_str(),
                  p.finalMargin, p.tuningChanges);
  }
  return out;
}

nlohmann::json toJson(const ReplayReport& report) {
  nlohmann::json out = {{"source", report.source},
                        {"host", report.host},
                        {"steps", report.steps},
                        {"warmup_steps", report.warmupSteps},
                        {"vms", report.vmCount},
                        {"islands", report.islands},
                        {"vms_per_island", report.vmsPerIsland},
                        {"demand", report.demand},
                        {"policies", nlohmann::json::array()}};
  for (const auto& p : report.policies) {
    nlohmann::json actions = nlohmann::json::array();
    for (const auto& a : p.actions)
      actions.push_back({{"step", a.step},
                         {"from", a.from},
                         {"to", a.to},
                         {"cpus", a.cpus},
                         {"vm", a.vm},
                         {"cost_core_s", a.costCoreSeconds},
                         {"reason", a.reason}});
    nlohmann::json entry = {{"policy", policyName(p.policy)},
                            {"overload_vm_minutes", p.overloadVmMinutes},
                            {"overload_island_minutes", p.overloadIslandMinutes},
                            {"unmet_core_minutes", p.unmetCoreMinutes},
                            {"mean_depth", p.meanDepth},
                            {"max_depth", p.maxDepth},
                            {"action_count", p.actions.size()},
                            {"vm_moves", p.vmMoves},
                            {"move_cpu_seconds", p.moveCpuSeconds},
                            {"actions", actions},
                            {"capacity", p.capacity},
                            {"demand", p.demand}};
    if (runsPlanner(p.policy)) {
      entry["final_margin"] = p.finalMargin;
      entry["tuning_changes"] = p.tuningChanges;
      entry["overload_after_verdict"] = p.overloadAfterVerdict;
      entry["verdict_names"] = p.verdictNames;
      entry["verdicts"] = p.verdicts;
    }
    if (p.islandCalibration) {
      auto coverage = [](const QuantileCoverage& c) {
        return nlohmann::json{{"horizon", c.horizon},        {"samples", c.samples},
                              {"covered_p50", c.coveredP50}, {"covered_p95", c.coveredP95},
                              {"covered_p99", c.coveredP99}, {"mean_p95_gap", c.meanP95Gap},
                              {"mean_p99_gap", c.meanP99Gap}};
      };
      auto list = [&](const std::vector<QuantileCoverage>& horizons) {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& c : horizons) out.push_back(coverage(c));
        return out;
      };
      const IslandCalibration& c = *p.islandCalibration;
      entry["island_calibration"] = {
          {"horizons", list(c.horizons)},
          {"peak", coverage(c.peak)},
          {"loaded", {{"horizons", list(c.loadedHorizons)}, {"peak", coverage(c.loadedPeak)}}},
          {"quiet_passes", c.quietPasses},
          {"quiet_then_overloaded", c.quietThenOverloaded}};
    }
    out["policies"].push_back(entry);
  }
  return out;
}

std::string renderReplaySvg(const ReplayReport& report) {
  const int width = 1000, panel = 150, top = 30, left = 50, right = 10;
  const int height = top + int(report.islands.size()) * (panel + 20) + 20;
  const size_t steps = report.steps;
  const size_t stride = std::max<size_t>(1, steps / 1500);
  const double plotWidth = width - left - right;
  auto colour = [](ReplayPolicy p) {
    switch (p) {
      case ReplayPolicy::Atoll:
        return "#1f77b4";
      case ReplayPolicy::Threshold:
        return "#ff7f0e";
      case ReplayPolicy::Static:
        return "#7f7f7f";
      case ReplayPolicy::AtollHindsight:
        return "#2ca02c";
    }
    return "#000";
  };
  std::string svg = format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
      "font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%%\" height=\"100%%\" "
      "fill=\"white\"/>\n<text x=\"%d\" y=\"16\">%s: island demand (black) vs capacity per "
      "policy; marks: actions</text>\n",
      width, height, left, report.source.c_str());
  int legendX = left + 520;
  for (const auto& p : report.policies) {
    svg += format("<text x=\"%d\" y=\"16\" fill=\"%s\">%s</text>\n", legendX, colour(p.policy),
                  std::string(policyName(p.policy)).c_str());
    legendX += 100;
  }
  for (size_t i = 0; i < report.islands.size(); ++i) {
    const int y0 = top + int(i) * (panel + 20);
    double peak = 1;
    for (size_t t = 0; t < steps; ++t) {
      peak = std::max(peak, double(report.demand[i][t]));
      for (const auto& p : report.policies)
        peak = std::max({peak, double(p.capacity[i][t]), double(p.demand[i][t])});
    }
    peak *= 1.05;
    auto x = [&](size_t t) {
      return left + plotWidth * double(t) / double(std::max<size_t>(1, steps - 1));
    };
    auto y = [&](double v) { return y0 + panel - panel * v / peak; };
    svg += format(
        "<rect x=\"%d\" y=\"%d\" width=\"%.0f\" height=\"%d\" fill=\"none\" stroke=\"#ccc\"/>\n"
        "<text x=\"4\" y=\"%d\">%s</text><text x=\"4\" y=\"%d\">%.0f</text>\n",
        left, y0, plotWidth, panel, y0 + 12, report.islands[i].c_str(), y0 + 26, peak);
    if (report.warmupSteps < steps)
      svg += format(
          "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#aaa\" "
          "stroke-dasharray=\"3,3\"/>\n",
          x(report.warmupSteps), y0, x(report.warmupSteps), y0 + panel);
    auto polyline = [&](const std::vector<float>& values, const char* stroke, double widthPx) {
      std::string line = "<polyline fill=\"none\" stroke=\"" + std::string(stroke) +
                         "\" stroke-width=\"" + format("%.1f", widthPx) + "\" points=\"";
      for (size_t t = 0; t < steps; t += stride) {
        double v = values[t];
        for (size_t u = t; u < std::min(steps, t + stride); ++u) v = std::max(v, double(values[u]));
        line += format("%.1f,%.1f ", x(t), y(v));
      }
      return line + "\"/>\n";
    };
    svg += polyline(report.demand[i], "#000", 0.7);
    int lane = 0;
    for (const auto& p : report.policies) {
      if (p.vmMoves > 0) svg += polyline(p.demand[i], colour(p.policy), 0.5);  // its own placement
      svg += polyline(p.capacity[i], colour(p.policy), 1.4);
      for (const auto& a : p.actions) {
        if (a.to != report.islands[i] && a.from != report.islands[i]) continue;
        const bool gained = a.to == report.islands[i];
        svg += format("<circle cx=\"%.1f\" cy=\"%d\" r=\"2.5\" fill=\"%s\"/>\n", x(a.step),
                      gained ? y0 + 6 + 6 * lane : y0 + panel - 6 - 6 * lane, colour(p.policy));
      }
      ++lane;
    }
  }
  return svg + "</svg>\n";
}

}  // namespace Atoll::planner
