#include "migrate/planner/Planner.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <unordered_map>

#include "migrate/planner/Contention.h"
#include "numa/CpuSet.h"
#include "numa/IslandAllocator.h"

namespace Atoll::planner {

namespace {

constexpr size_t kHistoryLimit = 4096;
constexpr size_t kExecutedLimit = 4096;
constexpr double kLocalDistance = 10;

std::string format(const char* fmt, auto... args) {
  char text[512];
  std::snprintf(text, sizeof text, fmt, args...);
  return text;
}

// One island as the pass sees it.
struct IslandCalc {
  const IslandState* state = nullptr;
  double capacity = 0;
  double perCpu = 1;  // cores of capacity per CPU
  HorizonContention base;
  double trust = 1;
  double weight = 1;  // SLA priority weight
  Mode mode = Mode::Observe;
  bool busy = false;  // already part of an action this pass
  bool holdsCritical = false;
  std::vector<const VmState*> vms;
};

IslandView viewOf(const IslandCalc& island, double capacityAfter, const HorizonContention& after) {
  IslandView view;
  view.island = island.state->name;
  view.capacityBefore = island.capacity;
  view.capacityAfter = capacityAfter;
  view.p50Peak = island.base.p50Peak;
  view.p95Peak = island.base.p95Peak;
  view.contentionBefore = island.base.probability;
  view.contentionAfter = after.probability;
  view.overloadBefore = island.base.unmetCoreSeconds;
  view.overloadAfter = after.unmetCoreSeconds;
  view.trust = island.trust;
  return view;
}

bool touches(const Decision& d, const std::string& island) {
  return d.action != ActionKind::None && (d.fromIsland == island || d.toIsland == island);
}

// The island an action relieves: a resize's receiver, a move's source.
const std::string& relievedIsland(const Decision& d) {
  return d.action == ActionKind::MoveVm ? d.fromIsland : d.toIsland;
}

// The forecaster's recent p95 coverage of a series at the longest tracked
// horizon within the planning horizon (the shortest tracked one when none
// is within); nothing while no error has been scored there.
std::optional<double> recentCoverage(const forecast::ProfileSnapshot& profile, int horizonSteps) {
  const forecast::AccuracyRecord* chosen = nullptr;
  const uint32_t tracked = std::min<uint32_t>(profile.trackedCount, forecast::kMaxTrackedHorizons);
  for (uint32_t j = 0; j < tracked; ++j) {
    const forecast::AccuracyRecord& a = profile.accuracy[j];
    if (a.errors == 0) continue;
    if (chosen == nullptr || (a.horizon <= horizonSteps && a.horizon > chosen->horizon) ||
        (chosen->horizon > horizonSteps && a.horizon < chosen->horizon))
      chosen = &a;
  }
  if (chosen == nullptr) return std::nullopt;
  return double(chosen->coverage95);
}

}  // namespace

struct Planner::Pass {
  const PlanInput& input;
  std::vector<IslandCalc> islands;
  std::unordered_map<std::string, size_t> byName;
};

Result<Planner> Planner::create(const PlannerConfig& config) {
  std::string problem = config.validate();
  if (!problem.empty()) return Error::invalid("configure planner", "planner", "", problem);
  return Planner(config);
}

Planner::Planner(const PlannerConfig& config) : config_(config), margin_(config.margin) {}

Mode Planner::modeOf(const IslandState& island) const {
  return island.modeOverride.value_or(config_.mode);
}

double Planner::trust(const std::string& island) const {
  auto it = trust_.find(island);
  return it == trust_.end() ? 1.0 : it->second;
}

std::optional<Decision> Planner::find(uint64_t decision) const {
  if (auto it = executed_.find(decision); it != executed_.end()) return it->second.decision;
  for (auto it = history_.rbegin(); it != history_.rend(); ++it)
    if (it->id == decision) return *it;
  return std::nullopt;
}

std::vector<uint64_t> Planner::inFlight() const {
  std::vector<uint64_t> ids;
  for (const auto& [id, e] : executed_)
    if (e.inFlight) ids.push_back(id);
  return ids;
}

void Planner::reportCompleted(uint64_t decision, int64_t nowNs) {
  auto it = executed_.find(decision);
  if (it == executed_.end()) return;
  it->second.inFlight = false;
  it->second.completedNs = nowNs;
}

void Planner::reportFailed(uint64_t decision, int64_t nowNs) {
  // A failed action changed nothing: it no longer blocks, nor counts as a
  // decision to reverse, but it did spend budget (it was attempted).
  auto it = executed_.find(decision);
  if (it == executed_.end()) return;
  it->second.inFlight = false;
  it->second.completedNs = nowNs;
  it->second.failed = true;
  it->second.outcomeRecorded = true;
}

void Planner::restoreExecuted(const Decision& action, bool failed) {
  if (action.action == ActionKind::None || action.id == 0) return;
  Executed settled{action};
  settled.decision.taken = settled.decision.execute = true;
  settled.inFlight = false;
  settled.completedNs = action.atNs;
  settled.failed = failed;
  // Its outcome window was measured, or lost, before the restart.
  settled.outcomeRecorded = true;
  executed_[action.id] = std::move(settled);
  nextId_ = std::max(nextId_, action.id + 1);
  trimExecuted();
}

bool Planner::reopenOutcome(uint64_t decision) {
  auto it = executed_.find(decision);
  if (it == executed_.end() || it->second.inFlight || it->second.failed) return false;
  it->second.outcomeRecorded = false;
  return true;
}

void Planner::trimExecuted() {
  // Bounded: the oldest settled decisions go first.
  while (executed_.size() > kExecutedLimit) {
    auto oldest = std::find_if(executed_.begin(), executed_.end(),
                               [](const auto& entry) { return !entry.second.inFlight; });
    if (oldest == executed_.end()) break;
    executed_.erase(oldest);
  }
}

void Planner::remember(const Decision& decision) {
  history_.push_back(decision);
  while (history_.size() > kHistoryLimit) history_.pop_front();
}

bool Planner::conflictsInFlight(const Decision& decision, uint64_t& with) const {
  for (const auto& [id, e] : executed_) {
    if (!e.inFlight) continue;
    const Decision& other = e.decision;
    const bool sameVm = decision.action == ActionKind::MoveVm &&
                        other.action == ActionKind::MoveVm && other.vm == decision.vm;
    if (sameVm || touches(other, decision.fromIsland) || touches(other, decision.toIsland)) {
      with = id;
      return true;
    }
  }
  return false;
}

int Planner::movesInWindow(int64_t nowNs, const std::string* island) const {
  int count = 0;
  for (const auto& [id, e] : executed_) {
    if (e.decision.atNs <= nowNs - config_.budgetWindowNs) continue;
    if (island != nullptr && !touches(e.decision, *island)) continue;
    ++count;
  }
  return count;
}

const Planner::Executed* Planner::reversedBy(const Decision& decision, int64_t nowNs) const {
  const Executed* found = nullptr;
  for (const auto& [id, e] : executed_) {
    const Decision& other = e.decision;
    if (other.atNs <= nowNs - config_.hysteresisWindowNs) continue;
    if (other.action != decision.action) continue;
    if (e.failed) continue;
    const bool reverse = other.fromIsland == decision.toIsland &&
                         other.toIsland == decision.fromIsland &&
                         (decision.action != ActionKind::MoveVm || other.vm == decision.vm);
    if (reverse) found = &e;  // the latest (ids increase)
  }
  return found;
}

// Settles a candidate that already has its benefit and cost: the guards in
// order (in flight, budgets, dwell for moves, hysteresis), then the margin.
void Planner::applyGuards(Decision& d, int64_t nowNs, bool isRevert) {
  uint64_t with = 0;
  d.margin = margin_;
  if (conflictsInFlight(d, with)) {
    d.rule = Rule::InFlight;
    d.reason = format("conflicts with decision %llu still in flight", (unsigned long long)with);
    return;
  }
  if (!isRevert && config_.islandCooldownNs > 0) {
    for (const std::string* island : {&d.fromIsland, &d.toIsland}) {
      for (const auto& [id, e] : executed_) {
        if (e.failed || !touches(e.decision, *island)) continue;
        const int64_t age = nowNs - e.decision.atNs;
        if (age >= config_.islandCooldownNs) continue;
        const bool sameRole =
            (relievedIsland(e.decision) == *island) == (relievedIsland(d) == *island);
        if (sameRole && age >= config_.sameRoleCooldownNs) continue;
        d.rule = Rule::Cooldown;
        d.reason = format(
            "island %s changed by decision %llu %.0f s ago; cooldown is %.0f s (%.0f s to be %s "
            "again)",
            island->c_str(), (unsigned long long)id, double(age) / 1e9,
            double(config_.islandCooldownNs) / 1e9,
            double(std::min(config_.sameRoleCooldownNs, config_.islandCooldownNs)) / 1e9,
            relievedIsland(e.decision) == *island ? "relieved" : "the giving side");
        return;
      }
    }
  }
  if (movesInWindow(nowNs, nullptr) >= config_.hostMovesPerWindow) {
    d.rule = Rule::HostBudget;
    d.reason = format("host move budget spent: %d moves in the last %.0f s",
                      config_.hostMovesPerWindow, double(config_.budgetWindowNs) / 1e9);
    return;
  }
  for (const std::string* island : {&d.fromIsland, &d.toIsland}) {
    if (movesInWindow(nowNs, island) >= config_.islandMovesPerWindow) {
      d.rule = Rule::IslandBudget;
      d.reason = format("island %s move budget spent: %d moves in the last %.0f s", island->c_str(),
                        config_.islandMovesPerWindow, double(config_.budgetWindowNs) / 1e9);
      return;
    }
  }
  if (isRevert) {
    d.rule = Rule::Revert;
    d.taken = true;
    return;
  }
  const double required = d.cost.total() * (1 + margin_);
  if (const Executed* previous = reversedBy(d, nowNs)) {
    d.reverses = previous->decision.id;
    d.margin = (1 + margin_) * config_.hysteresisFactor - 1;
    const double hysteresisRequired = d.cost.total() * (1 + d.margin);
    if (d.benefit > required && d.benefit <= hysteresisRequired) {
      d.rule = Rule::Hysteresis;
      d.reason = format(
          "reverses decision %llu of %.0f s ago: benefit %.2f core-s needs more than %.2f "
          "(hysteresis x%.1f)",
          (unsigned long long)previous->decision.id, double(nowNs - previous->decision.atNs) / 1e9,
          d.benefit, hysteresisRequired, config_.hysteresisFactor);
      return;
    }
  }
  const double needed = d.cost.total() * (1 + d.margin);
  if (d.benefit > needed) {
    d.rule = Rule::BenefitExceedsCost;
    d.taken = true;
    d.reason = format("benefit %.2f core-s exceeds cost %.2f core-s x (1 + margin %.2f)", d.benefit,
                      d.cost.total(), d.margin);
  } else {
    d.rule = Rule::BelowMargin;
    d.reason = format("benefit %.2f core-s does not exceed cost %.2f core-s x (1 + margin %.2f)",
                      d.benefit, d.cost.total(), d.margin);
  }
}

void Planner::take(Decision& d, Mode mode) {
  d.execute = d.taken && mode == Mode::Enforce;
  if (!d.taken) return;
  if (mode == Mode::Observe) d.reason += " [observe: not executed]";
  if (!d.execute) return;
  executed_[d.id] = Executed{d};
  trimExecuted();
}

PlanResult Planner::plan(const PlanInput& input) {
  PlanResult result;
  result.nowNs = input.nowNs;
  Pass pass{input, {}, {}};
  pass.islands.resize(input.islands.size());
  for (size_t i = 0; i < input.islands.size(); ++i) {
    const IslandState& s = input.islands[i];
    IslandCalc& c = pass.islands[i];
    c.state = &s;
    c.capacity = s.capacity();
    c.perCpu = s.cpus.empty() ? 1.0 : c.capacity / static_cast<double>(s.cpus.size());
    c.base = horizonContention(s.profile, config_.horizonSteps, c.capacity, config_.riskThreshold);
    c.trust = trust(s.name);
    c.weight = 1 + config_.priorityWeight * std::max(0, s.priority);
    c.mode = modeOf(s);
    pass.byName.emplace(s.name, i);
  }
  for (const VmState& vm : input.vms) {
    auto it = pass.byName.find(vm.island);
    if (it == pass.byName.end()) continue;
    IslandCalc& c = pass.islands[it->second];
    c.vms.push_back(&vm);
    if (vm.flexibility == Flexibility::Critical) c.holdsCritical = true;
  }

  // Islands at risk, the highest priority and the deepest expected overload first.
  std::vector<size_t> atRisk;
  for (size_t i = 0; i < pass.islands.size(); ++i) {
    const IslandCalc& c = pass.islands[i];
    if (c.base.probability >= config_.riskThreshold && c.base.unmetCoreSeconds > 0 &&
        c.base.p50Peak >= config_.minRiskP50Share * c.capacity)
      atRisk.push_back(i);
  }
  std::sort(atRisk.begin(), atRisk.end(), [&](size_t a, size_t b) {
    const IslandCalc& x = pass.islands[a];
    const IslandCalc& y = pass.islands[b];
    if (x.state->priority != y.state->priority) return x.state->priority > y.state->priority;
    if (x.base.unmetCoreSeconds != y.base.unmetCoreSeconds)
      return x.base.unmetCoreSeconds > y.base.unmetCoreSeconds;
    return x.state->name < y.state->name;
  });

  const double rate = input.host.migrationBytesPerSecond > 0
                          ? input.host.migrationBytesPerSecond
                          : config_.defaultMigrationBytesPerSecond;

  // Node distance between a CPU and an island's memory, from the topology
  // when there is one, else 10 local and 20 remote from the node lists.
  auto nodeOfCpu = [&](unsigned cpu) -> std::optional<unsigned> {
    if (input.host.topology) return input.host.topology->nodeOfCpu(cpu);
    for (const auto& n : input.host.nodes)
      if (numa::contains(n.cpus, cpu)) return n.node;
    return std::nullopt;
  };
  auto distanceToMemory = [&](unsigned cpu, const numa::CpuList& memNodes) {
    auto node = nodeOfCpu(cpu);
    if (!node || memNodes.empty()) return kLocalDistance;
    double best = 1e9;
    for (unsigned m : memNodes) {
      double d = input.host.topology ? input.host.topology->distance(*node, m)
                                     : (*node == m ? kLocalDistance : 2 * kLocalDistance);
      best = std::min(best, d);
    }
    return best;
  };

  // Which CPUs leave the donor: the allocator's shrink (whole cores from the
  // donor's outskirts) with a topology; else the donor's highest CPUs,
  // those nearest the receiver's memory first.
  auto chooseCpus = [&](const IslandCalc& donor, const IslandCalc& receiver,
                        unsigned count) -> numa::CpuList {
    const numa::CpuList& cpus = donor.state->cpus;
    if (count == 0 || count >= cpus.size()) return {};
    if (input.host.topology) {
      numa::IslandAllocator allocator(*input.host.topology, {});
      auto shrunk = allocator.shrink(donor.state->name, cpus, count);
      if (!shrunk) return {};
      auto freed = numa::differenceOf(cpus, shrunk->cpus);
      if (freed.size() >= cpus.size()) return {};
      return freed;
    }
    std::vector<unsigned> order(cpus.rbegin(), cpus.rend());
    std::stable_sort(order.begin(), order.end(), [&](unsigned a, unsigned b) {
      return distanceToMemory(a, receiver.state->memNodes) <
             distanceToMemory(b, receiver.state->memNodes);
    });
    order.resize(count);
    std::sort(order.begin(), order.end());
    return order;
  };

  // A resize of `moved` from donor to receiver, with both islands' contention
  // after it, its benefit (relief weighted by priority and trust, less what
  // the donor loses) and its cost.
  struct ResizeCandidate {
    Decision decision;
    HorizonContention receiverAfter, donorAfter;
  };
  auto resizeCandidate = [&](const IslandCalc& donor, const IslandCalc& receiver,
                             const numa::CpuList& moved) {
    const double cores = double(moved.size()) * donor.perCpu;
    const HorizonContention receiverAfter =
        horizonContention(receiver.state->profile, config_.horizonSteps, receiver.capacity + cores,
                          config_.riskThreshold);
    const HorizonContention donorAfter = horizonContention(
        donor.state->profile, config_.horizonSteps, donor.capacity - cores, config_.riskThreshold);
    Decision c;
    c.action = ActionKind::ResizeIsland;
    c.fromIsland = donor.state->name;
    c.toIsland = receiver.state->name;
    c.cpusMoved = moved;
    c.benefit =
        receiver.weight * receiver.trust *
            (receiver.base.unmetCoreSeconds - receiverAfter.unmetCoreSeconds) -
        donor.weight * donor.trust * (donorAfter.unmetCoreSeconds - donor.base.unmetCoreSeconds);
    double warmup = 0;
    for (unsigned cpu : moved)
      warmup += config_.cacheWarmupSecondsPerCpu *
                (distanceToMemory(cpu, receiver.state->memNodes) / kLocalDistance);
    c.cost.cacheWarmup = warmup;
    c.cost.disruption =
        config_.resizeDisruptionPerVm * double(receiver.vms.size() + donor.vms.size());
    c.cost.actionCpu = config_.resizeActionCpu;
    c.islands = {viewOf(receiver, receiver.capacity + cores, receiverAfter),
                 viewOf(donor, donor.capacity - cores, donorAfter)};
    return ResizeCandidate{std::move(c), receiverAfter, donorAfter};
  };

  // Takes an action between two islands: enforced only where both are in
  // enforce mode, and neither takes part in another action this pass.
  auto takeForPair = [&](Decision& decision, IslandCalc& a, IslandCalc& b) {
    take(decision,
         a.mode == Mode::Enforce && b.mode == Mode::Enforce ? Mode::Enforce : Mode::Observe);
    a.busy = true;
    b.busy = true;
  };

  const double horizonSeconds = [&] {
    for (const auto& c : pass.islands)
      if (c.state->profile.stepNs > 0)
        return double(std::min<int64_t>(c.state->profile.steps, config_.horizonSteps)) *
               double(c.state->profile.stepNs) / 1e9;
    return 0.0;
  }();

  // Action economy: a candidate must bring at least a share of the relief of
  // the resize the receiver needs (sizedRelief), so that actions that leave
  // most of it in place, and so call for another action soon, are declined
  // (unless something declined them already). Measured against what the
  // right-sized resize brings, not against the whole predicted overload:
  // where the forecast's upper tail is wide, no single step removes all of it.
  // `donorHarm`: the donor's expected unmet demand added by the action
  // (counted against the relief under the expected-unmet donor rule).
  auto declineSmallRelief = [&](Decision& c, const IslandCalc& receiver,
                                const HorizonContention& after, double sizedRelief,
                                double donorHarm = 0) {
    if (c.rule != Rule::NoRisk || config_.minReliefShare <= 0) return;
    const double relief = receiver.base.unmetCoreSeconds - after.unmetCoreSeconds - donorHarm;
    const double needed = config_.minReliefShare * sizedRelief;
    if (relief >= needed) return;
    c.rule = Rule::SmallRelief;
    c.reason = format(
        "relieves %.2f (net of %.2f added to the donor) of island %s's %.2f core-s predicted "
        "overload; the resize it needs would relieve %.2f and an action must bring %.0f%% of that",
        relief, donorHarm, receiver.state->name.c_str(), receiver.base.unmetCoreSeconds,
        sizedRelief, 100 * config_.minReliefShare);
  };

  // The steps a donor keeps its own peak for: the horizon, or the cooldown
  // its resize starts when that is longer and the rule is on.
  auto donorSteps = [&](const IslandCalc& donor) {
    int steps = config_.horizonSteps;
    const int64_t stepNs = donor.state->profile.stepNs;
    if (config_.donorKeepsPeakOverCooldown && stepNs > 0) {
      const int64_t cooldownSteps = (config_.islandCooldownNs + stepNs - 1) / stepNs;
      steps = int(std::clamp<int64_t>(cooldownSteps, steps, forecast::kMaxProfileSteps));
    }
    return steps;
  };
  // The steps an expected-unmet donor's harm counts over: the horizon, or the
  // cooldown its resize starts when that is longer and the rule is on.
  auto harmSteps = [&](const IslandCalc& donor) {
    const int64_t stepNs = donor.state->profile.stepNs;
    if (!config_.donorHarmOverCooldown || stepNs <= 0) return config_.horizonSteps;
    const int64_t cooldownSteps = (config_.islandCooldownNs + stepNs - 1) / stepNs;
    return int(std::clamp<int64_t>(
        cooldownSteps, config_.horizonSteps,
        std::max<int64_t>(config_.horizonSteps, std::min<int64_t>(forecast::kMaxProfileSteps,
                                                                  donor.state->profile.steps))));
  };
  // The donor's forecast over those steps (its horizon's when they are the same).
  auto donorOutlook = [&](const IslandCalc& donor, double capacity) {
    if (donorSteps(donor) == config_.horizonSteps && capacity == donor.capacity) return donor.base;
    return horizonContention(donor.state->profile, donorSteps(donor), capacity,
                             config_.riskThreshold);
  };
  // Whole CPUs a donor can give while keeping its p95 peak (p99 with
  // critical VMs) times headroom, and at least one CPU however idle it is;
  // none from an island itself at risk.
  auto donorSlackCpus = [&](const IslandCalc& donor) -> unsigned {
    if (donor.state->cpus.size() < 2) return 0;
    const HorizonContention outlook = donorOutlook(donor, donor.capacity);
    if (outlook.probability >= config_.riskThreshold) return 0;
    double peak = outlook.p95Peak;
    if (donor.holdsCritical) {
      // An island holding critical VMs keeps room for their p99.
      peak = std::max(peak, outlook.p99Peak);
    }
    const double slackCores = donor.capacity - peak * config_.headroom;
    return std::min(static_cast<unsigned>(std::max(0.0, std::floor(slackCores / donor.perCpu))),
                    static_cast<unsigned>(donor.state->cpus.size() - 1));
  };
  // After giving `cores`, the donor stays out of risk over its steps, and a
  // higher-priority donor is no worse off than before.
  auto donorStaysSafe = [&](const IslandCalc& donor, const IslandCalc& receiver, double cores,
                            const HorizonContention& donorAfter) {
    if (donorAfter.probability >= config_.riskThreshold) return false;
    if (donorSteps(donor) != config_.horizonSteps &&
        donorOutlook(donor, donor.capacity - cores).probability >= config_.riskThreshold)
      return false;
    return !(donor.state->priority > receiver.state->priority &&
             donorAfter.probability > donor.base.probability);
  };

  for (size_t r : atRisk) {
    IslandCalc& receiver = pass.islands[r];
    if (receiver.busy) continue;
    std::vector<Decision> candidates;
    std::vector<size_t> partners;

    // Resizes: CPUs from each island with slack.
    const double sizedFor =
        config_.resizeQuantile == 99 ? receiver.base.p99Peak : receiver.base.p95Peak;
    const double wanted = sizedFor * config_.headroom - receiver.capacity;
    const unsigned need = static_cast<unsigned>(
        std::clamp(std::ceil(std::max(wanted, receiver.perCpu) / receiver.perCpu), 1.0,
                   double(config_.maxCpusPerResize)));
    const double sizedRelief =
        receiver.base.unmetCoreSeconds -
        horizonContention(receiver.state->profile, config_.horizonSteps,
                          receiver.capacity + double(need) * receiver.perCpu, config_.riskThreshold)
            .unmetCoreSeconds;
    for (size_t d = 0; config_.donorRule != DonorRule::ExpectedUnmet && d < pass.islands.size();
         ++d) {
      IslandCalc& donor = pass.islands[d];
      if (d == r || donor.busy) continue;
      const unsigned slackCpus = donorSlackCpus(donor);
      if (slackCpus == 0) continue;
      numa::CpuList moved = chooseCpus(donor, receiver, std::min(need, slackCpus));
      if (moved.empty() || moved.size() > slackCpus) continue;
      auto [c, receiverAfter, donorAfter] = resizeCandidate(donor, receiver, moved);
      if (!donorStaysSafe(donor, receiver, double(moved.size()) * donor.perCpu, donorAfter))
        continue;
      declineSmallRelief(c, receiver, receiverAfter, sizedRelief);
      candidates.push_back(std::move(c));
      partners.push_back(d);
    }

    // Expected-unmet donors (under peak-then-expected-unmet only when no
    // island has slack by its peak): every other island is a donor of
    // k = 1..need CPUs (keeping one), judged by the receiver's expected unmet
    // demand avoided less the donor's added; per donor, the k with the best
    // net relief per cost among those the relief share admits.
    const bool expectedUnmetDonors =
        config_.donorRule == DonorRule::ExpectedUnmet ||
        (config_.donorRule == DonorRule::PeakThenExpectedUnmet && candidates.empty());
    for (size_t d = 0; expectedUnmetDonors && d < pass.islands.size(); ++d) {
      IslandCalc& donor = pass.islands[d];
      if (d == r || donor.busy || donor.state->cpus.size() < 2) continue;
      const unsigned most = std::min(need, static_cast<unsigned>(donor.state->cpus.size() - 1));
      std::optional<Decision> chosenForDonor;
      double chosenScore = 0;
      size_t lastSize = 0;
      for (unsigned k = 1; k <= most; ++k) {
        numa::CpuList moved = chooseCpus(donor, receiver, k);
        // The allocator frees whole cores: skip a count it rounds to a size seen already.
        if (moved.empty() || moved.size() > most || moved.size() == lastSize) continue;
        lastSize = moved.size();
        auto [c, receiverAfter, donorAfter] = resizeCandidate(donor, receiver, moved);
        if (donor.state->priority > receiver.state->priority &&
            donorAfter.probability > donor.base.probability)
          continue;
        double harm = donorAfter.unmetCoreSeconds - donor.base.unmetCoreSeconds;
        if (const int steps = harmSteps(donor); steps != config_.horizonSteps) {
          const double cores = double(moved.size()) * donor.perCpu;
          const double longHarm =
              horizonContention(donor.state->profile, steps, donor.capacity - cores,
                                config_.riskThreshold)
                  .unmetCoreSeconds -
              horizonContention(donor.state->profile, steps, donor.capacity, config_.riskThreshold)
                  .unmetCoreSeconds;
          c.benefit -= donor.weight * donor.trust * (longHarm - harm);
          harm = longHarm;
        }
        declineSmallRelief(c, receiver, receiverAfter, sizedRelief, harm);
        const double cost = c.cost.total();
        const double score = cost > 0 ? c.benefit / cost : c.benefit * 1e12;
        const bool admitted = c.rule == Rule::NoRisk;
        const bool chosenAdmitted = chosenForDonor && chosenForDonor->rule == Rule::NoRisk;
        if (!chosenForDonor || (admitted && !chosenAdmitted) ||
            (admitted == chosenAdmitted && score > chosenScore)) {
          chosenForDonor = std::move(c);
          chosenScore = score;
        }
      }
      if (!chosenForDonor) continue;
      candidates.push_back(std::move(*chosenForDonor));
      partners.push_back(d);
    }

    // Moves: the largest flexible VMs to islands with room for them.
    if (config_.allowVmMoves) {
      std::vector<const VmState*> movable;
      for (const VmState* vm : receiver.vms)
        if (vm->flexibility == Flexibility::Flexible) movable.push_back(vm);
      auto peakOf = [](const VmState* vm) {
        return vm->demand.steps > 0 ? double(vm->demand.p50[0]) : vm->observedCores;
      };
      std::stable_sort(movable.begin(), movable.end(),
                       [&](const VmState* a, const VmState* b) { return peakOf(a) > peakOf(b); });
      if (movable.size() > size_t(config_.vmCandidatesPerIsland))
        movable.resize(size_t(config_.vmCandidatesPerIsland));
      for (const VmState* vm : movable) {
        double vmP95Peak = 0;
        for (int k = 0; k < std::min<int>(vm->demand.steps, config_.horizonSteps); ++k)
          vmP95Peak = std::max(vmP95Peak, double(vm->demand.p95[k]));
        const HorizonContention sourceAfter =
            horizonContention(receiver.state->profile, config_.horizonSteps, receiver.capacity,
                              config_.riskThreshold, &vm->demand, -1);
        for (size_t t = 0; t < pass.islands.size(); ++t) {
          IslandCalc& target = pass.islands[t];
          if (t == r || target.busy) continue;
          if (target.base.p95Peak + vmP95Peak > target.capacity) continue;
          const HorizonContention targetAfter =
              horizonContention(target.state->profile, config_.horizonSteps, target.capacity,
                                config_.riskThreshold, &vm->demand, +1);
          if (targetAfter.probability >= config_.riskThreshold) continue;
          Decision c;
          c.action = ActionKind::MoveVm;
          c.fromIsland = receiver.state->name;
          c.toIsland = target.state->name;
          c.vm = vm->workload;
          c.vmName = vm->name;
          c.vmResidentBytes = vm->residentBytes;
          c.targetMemNodes = target.state->memNodes;
          c.benefit = receiver.weight * receiver.trust *
                          (receiver.base.unmetCoreSeconds - sourceAfter.unmetCoreSeconds) -
                      target.weight * target.trust *
                          (targetAfter.unmetCoreSeconds - target.base.unmetCoreSeconds);
          const bool sameMemory = target.state->memNodes == receiver.state->memNodes;
          const double moveSeconds = sameMemory ? 0.0 : double(vm->residentBytes) / rate;
          const double vmCores = std::max(peakOf(vm), vm->observedCores);
          c.cost.pageMigration = moveSeconds;
          c.cost.cacheWarmup = config_.vmCacheWarmupSeconds * vmCores * (sameMemory ? 0.25 : 1.0);
          c.cost.disruption = config_.moveSlowdown * vmCores * moveSeconds;
          c.cost.actionCpu = config_.moveActionCpu;
          c.islands = {viewOf(receiver, receiver.capacity, sourceAfter),
                       viewOf(target, target.capacity, targetAfter)};
          // The move's relief rests on the VM's own forecast: scaled by how
          // well its p95 has recently covered what came, and not taken at
          // all when that forecast is stale (say, the series' level shifted).
          if (auto coverage = recentCoverage(vm->demand, config_.horizonSteps)) {
            c.benefit *= std::min(1.0, *coverage / 0.95);
            if (*coverage < config_.minMoveCoverage) {
              c.rule = Rule::StaleForecast;
              c.reason = format(
                  "VM %s's forecast covered only %.0f%% of recent demand at its p95 (needs "
                  "%.0f%%)",
                  vm->name.c_str(), 100 * *coverage, 100 * config_.minMoveCoverage);
            }
          }
          declineSmallRelief(c, receiver, sourceAfter, sizedRelief);
          if (vm->lastMoveNs != kNeverNs && input.nowNs - vm->lastMoveNs < config_.minDwellNs) {
            c.rule = Rule::Dwell;
            c.reason = format("VM %s moved %.0f s ago; dwell is %.0f s", vm->name.c_str(),
                              double(input.nowNs - vm->lastMoveNs) / 1e9,
                              double(config_.minDwellNs) / 1e9);
          }
          candidates.push_back(std::move(c));
          partners.push_back(t);
        }
      }
    }

    if (candidates.empty()) {
      Decision none;
      none.id = nextId_++;
      none.atNs = input.nowNs;
      none.horizonSeconds = horizonSeconds;
      none.firstRiskStep = receiver.base.firstRiskStep;
      none.rule = Rule::NoDonor;
      none.margin = margin_;
      none.toIsland = receiver.state->name;
      none.reason = format(
          "island %s heads for contention (P=%.2f) but no island has slack and no VM can move",
          receiver.state->name.c_str(), receiver.base.probability);
      none.islands = {viewOf(receiver, receiver.capacity, receiver.base)};
      remember(none);
      result.decisions.push_back(std::move(none));
      continue;
    }

    // Guards and margin per candidate; the best taken one wins, else the
    // candidate with the best net gain explains why nothing was done.
    int best = -1, bestDeclined = -1;
    auto net = [&](const Decision& d) { return d.benefit - d.cost.total() * (1 + d.margin); };
    // Among taken candidates: the best net gain, or with expected-unmet
    // donors the best net relief per cost.
    auto takenRank = [&](const Decision& d) {
      if (!expectedUnmetDonors) return net(d);
      const double cost = d.cost.total();
      return cost > 0 ? d.benefit / cost : d.benefit * 1e12;
    };
    for (size_t i = 0; i < candidates.size(); ++i) {
      Decision& c = candidates[i];
      c.atNs = input.nowNs;
      c.horizonSeconds = horizonSeconds;
      c.firstRiskStep = receiver.base.firstRiskStep;
      if (c.rule != Rule::NoRisk) {  // declined while it was built
        c.margin = margin_;
      } else {
        applyGuards(c, input.nowNs, false);
      }
      if (c.taken) {
        if (best < 0 || takenRank(c) > takenRank(candidates[best])) best = int(i);
      } else if (bestDeclined < 0 || net(c) > net(candidates[bestDeclined])) {
        bestDeclined = int(i);
      }
    }
    // A taken resize that takes the island out of risk wins over any move:
    // it is cheaper to undo, moves nobody's memory, and keeps VMs where their
    // forecasts were learnt; a move is for when resizes cannot relieve the
    // island (no donor with enough slack, or the guards refuse them).
    int bestRelievingResize = -1;
    for (size_t i = 0; i < candidates.size(); ++i) {
      const Decision& c = candidates[i];
      if (!c.taken || c.action != ActionKind::ResizeIsland || c.islands.empty()) continue;
      if (c.islands.front().contentionAfter >= config_.riskThreshold) continue;
      if (bestRelievingResize < 0 || takenRank(c) > takenRank(candidates[bestRelievingResize]))
        bestRelievingResize = int(i);
    }
    if (bestRelievingResize >= 0) best = bestRelievingResize;
    const int chosen = best >= 0 ? best : bestDeclined;
    Decision decision = std::move(candidates[chosen]);
    decision.id = nextId_++;
    IslandCalc& partner = pass.islands[partners[chosen]];
    if (decision.taken) takeForPair(decision, receiver, partner);
    remember(decision);
    result.decisions.push_back(std::move(decision));
  }

  // Proactive balance: islands not yet at risk whose capacity has fallen
  // behind their sized peak relative to the rest of the host get CPUs from
  // the island with the most capacity beyond the host's ratio. Islands
  // resized for one burst keep what they got, so without this the host
  // drifts into a layout where the islands that gave are short when their
  // own demand returns. Only taken balance resizes are reported: an island
  // not at risk that is left as it is needs no explanation.
  if (config_.balanceBand > 0) {
    auto sizedNeed = [&](const IslandCalc& c) {
      return (config_.resizeQuantile == 99 ? c.base.p99Peak : c.base.p95Peak) * config_.headroom;
    };
    double capacitySum = 0, needSum = 0;
    std::vector<size_t> eligible;
    for (size_t i = 0; i < pass.islands.size(); ++i) {
      const IslandCalc& c = pass.islands[i];
      if (c.state->profile.steps == 0 || c.state->cpus.empty() || !(sizedNeed(c) > 0)) continue;
      capacitySum += c.capacity;
      needSum += sizedNeed(c);
      eligible.push_back(i);
    }
    const double hostRatio = needSum > 0 ? capacitySum / needSum : 0;
    auto ratioOf = [&](size_t i) { return pass.islands[i].capacity / sizedNeed(pass.islands[i]); };
    std::sort(eligible.begin(), eligible.end(), [&](size_t a, size_t b) {
      return ratioOf(a) != ratioOf(b) ? ratioOf(a) < ratioOf(b) : a < b;
    });
    for (size_t r : eligible) {
      IslandCalc& receiver = pass.islands[r];
      if (receiver.busy) continue;
      const double receiverRatio = ratioOf(r);
      if (receiverRatio >= hostRatio * (1 - config_.balanceBand)) break;
      const double shortCores = hostRatio * sizedNeed(receiver) - receiver.capacity;
      // The donor: the highest ratio among the rest, giving only what it
      // holds beyond the host's ratio and beyond its own p95 (p99 with
      // critical VMs) peak with headroom.
      std::optional<size_t> donorIndex;
      unsigned count = 0;
      for (auto it = eligible.rbegin(); it != eligible.rend(); ++it) {
        IslandCalc& donor = pass.islands[*it];
        if (*it == r || donor.busy || donor.state->cpus.size() < 2) continue;
        if (donor.state->priority > receiver.state->priority) continue;
        if (ratioOf(*it) <= hostRatio) break;
        double keep = std::max(hostRatio * sizedNeed(donor), donor.base.p95Peak * config_.headroom);
        if (donor.holdsCritical) keep = std::max(keep, donor.base.p99Peak * config_.headroom);
        const double spare = std::floor((donor.capacity - keep) / donor.perCpu);
        const double wanted = std::ceil(shortCores / receiver.perCpu);
        const double cpus = std::min({spare, wanted, double(config_.maxCpusPerResize),
                                      double(donor.state->cpus.size() - 1)});
        if (cpus < 1) continue;
        donorIndex = *it;
        count = unsigned(cpus);
        break;
      }
      if (!donorIndex) continue;
      IslandCalc& donor = pass.islands[*donorIndex];
      numa::CpuList moved = chooseCpus(donor, receiver, count);
      if (moved.empty() || moved.size() > count) continue;
      auto [c, receiverAfter, donorAfter] = resizeCandidate(donor, receiver, moved);
      if (donorAfter.probability >= config_.riskThreshold) continue;
      c.atNs = input.nowNs;
      c.horizonSeconds = horizonSeconds;
      c.firstRiskStep = receiver.base.firstRiskStep;
      applyGuards(c, input.nowNs, false);
      if (!c.taken) continue;
      c.reason = format(
                     "balance: island %s holds %.2fx its sized peak %.1f cores, the host %.2fx, %s "
                     "%.2fx; ",
                     receiver.state->name.c_str(), receiverRatio, sizedNeed(receiver), hostRatio,
                     donor.state->name.c_str(), ratioOf(*donorIndex)) +
                 c.reason;
      c.id = nextId_++;
      takeForPair(c, receiver, donor);
      remember(c);
      result.decisions.push_back(std::move(c));
    }
  }
  return result;
}

std::vector<TuningRecord> Planner::recordOutcome(uint64_t decision, double realisedRelief,
                                                 int64_t nowNs) {
  std::vector<TuningRecord> added;
  auto it = executed_.find(decision);
  if (it == executed_.end() || it->second.outcomeRecorded || !std::isfinite(realisedRelief))
    return added;
  it->second.outcomeRecorded = true;
  const Decision& d = it->second.decision;
  if (d.islands.empty()) return added;
  const IslandView& relieved = d.islands.front();
  const double predicted = relieved.overloadBefore - relieved.overloadAfter;
  if (!(predicted > 0)) return added;
  // Single outcomes are noisy (contention is a tail event: most windows
  // realise nothing, a few realise much more than the mean), so both trust
  // and margin follow exponentially weighted sums of realised and predicted
  // relief, and their ratio.
  auto blend = [&](OutcomeRelief& r) {
    if (r.outcomes == 0) {
      r.realised = realisedRelief;
      r.predicted = predicted;
    } else {
      r.realised += config_.trustGain * (realisedRelief - r.realised);
      r.predicted += config_.trustGain * (predicted - r.predicted);
    }
    ++r.outcomes;
    return r.predicted > 0 ? std::max(0.0, r.realised) / r.predicted : 1.0;
  };
  const double islandRatio = blend(islandRelief_[relieved.island]);
  const double hostRatio = blend(hostRelief_);

  TuningRecord base;
  base.atNs = nowNs;
  base.decision = decision;
  base.predicted = predicted;
  base.realised = realisedRelief;

  const double trustBefore = trust(relieved.island);
  const double trustAfter = std::clamp(islandRatio, config_.minTrust, config_.maxTrust);
  if (trustAfter != trustBefore) {
    TuningRecord r = base;
    r.island = relieved.island;
    r.field = "trust";
    r.before = trustBefore;
    r.after = trustAfter;
    r.reason = format(
        "realised %.2f of %.2f core-s predicted; weighted realised/predicted on this island "
        "%.2f",
        realisedRelief, predicted, islandRatio);
    trust_[relieved.island] = trustAfter;
    added.push_back(r);
  }
  double marginAfter = margin_;
  std::string why;
  if (hostRatio < 1 - config_.outcomeTolerance) {
    marginAfter = std::min(config_.maxMargin, margin_ + config_.marginStep);
    why = "moves realise less relief than predicted: ask more of the next one";
  } else if (hostRatio > 1 + config_.outcomeTolerance) {
    marginAfter = std::max(config_.minMargin, margin_ - config_.marginStep);
    why = "moves realise more relief than predicted: the margin can be lower";
  }
  if (marginAfter != margin_) {
    TuningRecord r = base;
    r.field = "margin";
    r.before = margin_;
    r.after = marginAfter;
    r.reason = why + format(" (weighted realised/predicted on the host %.2f)", hostRatio);
    margin_ = marginAfter;
    added.push_back(r);
  }
  tuning_.insert(tuning_.end(), added.begin(), added.end());
  while (tuning_.size() > kTuningLimit) tuning_.pop_front();
  tuningChanges_ += added.size();
  return added;
}

TuningState Planner::tuningState() const {
  return {margin_, trust_, islandRelief_, hostRelief_, tuningChanges_};
}

namespace {

// The first value of a journaled tuning state that cannot be restored, as
// (field, value): a value that is not finite, or a negative predicted relief.
std::optional<std::pair<std::string, double>> firstUnusable(const TuningState& state) {
  if (!std::isfinite(state.margin)) return std::pair{std::string("margin"), state.margin};
  for (const auto& [island, value] : state.trust)
    if (!std::isfinite(value)) return std::pair{"trust." + island, value};
  auto check = [](const OutcomeRelief& r,
                  const std::string& field) -> std::optional<std::pair<std::string, double>> {
    if (!std::isfinite(r.realised)) return std::pair{field + ".realised", r.realised};
    if (!std::isfinite(r.predicted) || r.predicted < 0)
      return std::pair{field + ".predicted", r.predicted};
    return std::nullopt;
  };
  if (auto bad = check(state.hostRelief, "relief.host")) return bad;
  for (const auto& [island, relief] : state.islandRelief)
    if (auto bad = check(relief, "relief.islands." + island)) return bad;
  return std::nullopt;
}

}  // namespace

Result<TuningRestore> Planner::restoreTuning(const TuningState& state,
                                             const std::set<std::string>& islands) {
  if (auto bad = firstUnusable(state))
    return Error::invalid("restore planner tuning", bad->first, format("%g", bad->second),
                          "must be finite (and a predicted relief not negative)");
  TuningRestore restore;
  margin_ = std::clamp(state.margin, config_.minMargin, config_.maxMargin);
  restore.marginClamped = margin_ != state.margin;
  trust_.clear();
  islandRelief_.clear();
  std::set<std::string> dropped;
  for (const auto& [island, value] : state.trust) {
    if (!islands.count(island)) {
      dropped.insert(island);
      continue;
    }
    const double bounded = std::clamp(value, config_.minTrust, config_.maxTrust);
    if (bounded != value) restore.trustClamped.push_back(island);
    trust_[island] = bounded;
  }
  for (const auto& [island, relief] : state.islandRelief) {
    if (!islands.count(island)) {
      dropped.insert(island);
      continue;
    }
    islandRelief_[island] = relief;
  }
  restore.droppedIslands.assign(dropped.begin(), dropped.end());
  hostRelief_ = state.hostRelief;
  tuningChanges_ = state.changes;
  tuningChangesRestored_ = state.changes;
  return restore;
}

std::optional<Decision> Planner::verify(const MoveVerification& measured, const PlanInput& input) {
  auto refuse = [&](std::string why) -> std::optional<Decision> {
    ++verificationsRefused_;
    lastVerificationRefusal_ = std::move(why);
    return std::nullopt;
  };
  auto it = executed_.find(measured.decision);
  if (it == executed_.end())
    return refuse(format("decision %llu was not executed by this planner",
                         (unsigned long long)measured.decision));
  if (it->second.failed)
    return refuse(format("decision %llu failed to execute: there is nothing to revert",
                         (unsigned long long)measured.decision));
  const Decision& original = it->second.decision;
  if (original.action == ActionKind::None) return std::nullopt;
  const bool slower = measured.runQueueLatencyBeforeNs > 0 &&
                      measured.runQueueLatencyAfterNs >
                          measured.runQueueLatencyBeforeNs * (1 + config_.verifyLatencyTolerance);
  const bool lessWork = measured.throughputBefore > 0 &&
                        measured.throughputAfter <
                            measured.throughputBefore * (1 - config_.verifyThroughputTolerance);
  if (!slower && !lessWork) return std::nullopt;

  // The revert changes the islands (and VM) as they are now: one that left
  // the configuration since cannot be given CPUs back or receive a VM.
  for (const std::string* island : {&original.fromIsland, &original.toIsland}) {
    const bool present = std::any_of(input.islands.begin(), input.islands.end(),
                                     [&](const IslandState& s) { return s.name == *island; });
    if (!present)
      return refuse(format("the revert of decision %llu names island '%s', absent from the input",
                           (unsigned long long)original.id, island->c_str()));
  }
  if (original.action == ActionKind::MoveVm &&
      std::none_of(input.vms.begin(), input.vms.end(),
                   [&](const VmState& vm) { return vm.workload == original.vm; }))
    return refuse(format("the revert of decision %llu names VM %s (%u), absent from the input",
                         (unsigned long long)original.id, original.vmName.c_str(), original.vm));

  Decision revert;
  revert.id = nextId_++;
  revert.atNs = measured.nowNs;
  revert.action = original.action;
  revert.fromIsland = original.toIsland;
  revert.toIsland = original.fromIsland;
  revert.cpusMoved = original.cpusMoved;
  revert.vm = original.vm;
  revert.vmName = original.vmName;
  revert.vmResidentBytes = original.vmResidentBytes;
  revert.reverses = original.id;
  revert.horizonSeconds = original.horizonSeconds;
  revert.cost = original.cost;
  bool bothEnforce = true;
  for (const auto& island : input.islands) {
    if (island.name != revert.fromIsland && island.name != revert.toIsland) continue;
    if (modeOf(island) != Mode::Enforce) bothEnforce = false;
    if (original.action == ActionKind::MoveVm && island.name == revert.toIsland)
      revert.targetMemNodes = island.memNodes;
  }
  const Mode mode = bothEnforce ? Mode::Enforce : Mode::Observe;
  applyGuards(revert, measured.nowNs, true);
  if (revert.taken) {
    revert.reason = format(
        "decision %llu made things worse: run-queue latency %.0f -> %.0f ns, throughput "
        "%.3g -> %.3g",
        (unsigned long long)original.id, measured.runQueueLatencyBeforeNs,
        measured.runQueueLatencyAfterNs, measured.throughputBefore, measured.throughputAfter);
    take(revert, mode);
  }
  remember(revert);
  if (!revert.taken) return std::nullopt;
  return revert;
}

nlohmann::json Planner::tuningJson() const {
  nlohmann::json out = {{"margin", margin_},
                        {"margin_bounds", {config_.minMargin, config_.maxMargin}},
                        {"trust_bounds", {config_.minTrust, config_.maxTrust}},
                        {"trust", nlohmann::json::object()},
                        {"changes_total", tuningChanges_},
                        {"changes_before_start", tuningChangesRestored_},
                        {"changes", nlohmann::json::array()}};
  for (const auto& [island, value] : trust_) out["trust"][island] = value;
  for (const auto& record : tuning_) out["changes"].push_back(toJson(record));
  return out;
}

namespace {

nlohmann::json toJson(const OutcomeRelief& relief) {
  return {{"realised", relief.realised},
          {"predicted", relief.predicted},
          {"outcomes", relief.outcomes}};
}

}  // namespace

nlohmann::json toJson(const TuningState& state) {
  nlohmann::json out = {
      {"margin", state.margin},
      {"changes", state.changes},
      {"trust", nlohmann::json::object()},
      {"relief", {{"host", toJson(state.hostRelief)}, {"islands", nlohmann::json::object()}}}};
  for (const auto& [island, value] : state.trust) out["trust"][island] = value;
  for (const auto& [island, relief] : state.islandRelief)
    out["relief"]["islands"][island] = toJson(relief);
  return out;
}

Result<TuningState> tuningStateFromJson(const nlohmann::json& record) {
  auto refuse = [](const std::string& field, const std::string& detail) {
    return Error::invalid("read", "planner tuning record", field, detail);
  };
  // A number JSON can hold that is not finite comes back as null, so a
  // non-number is refused here and a non-finite one by restoreTuning.
  auto number = [](const nlohmann::json& object, const char* key) -> std::optional<double> {
    auto it = object.find(key);
    if (it == object.end() || !it->is_number()) return std::nullopt;
    return it->get<double>();
  };
  auto relief = [&](const nlohmann::json& value,
                    const std::string& field) -> Result<OutcomeRelief> {
    if (!value.is_object()) return refuse(field, "not a JSON object");
    auto realised = number(value, "realised");
    auto predicted = number(value, "predicted");
    if (!realised) return refuse(field + ".realised", "missing or not a number");
    if (!predicted) return refuse(field + ".predicted", "missing or not a number");
    if (!value.contains("outcomes") || !value["outcomes"].is_number_unsigned())
      return refuse(field + ".outcomes", "missing or not a non-negative integer");
    return OutcomeRelief{*realised, *predicted, value["outcomes"].get<uint64_t>()};
  };
  if (!record.is_object()) return refuse("", "not a JSON object");
  TuningState state;
  auto margin = number(record, "margin");
  if (!margin) return refuse("margin", "missing or not a number");
  state.margin = *margin;
  if (!record.contains("changes") || !record["changes"].is_number_unsigned())
    return refuse("changes", "missing or not a non-negative integer");
  state.changes = record["changes"].get<uint64_t>();
  if (!record.contains("trust") || !record["trust"].is_object())
    return refuse("trust", "missing or not a JSON object");
  for (const auto& [island, value] : record["trust"].items()) {
    if (!value.is_number()) return refuse("trust." + island, "not a number");
    state.trust[island] = value.get<double>();
  }
  if (!record.contains("relief") || !record["relief"].is_object())
    return refuse("relief", "missing or not a JSON object");
  const nlohmann::json& reliefs = record["relief"];
  if (!reliefs.contains("host")) return refuse("relief.host", "missing");
  auto host = relief(reliefs["host"], "relief.host");
  if (!host) return host.error();
  state.hostRelief = *host;
  if (!reliefs.contains("islands") || !reliefs["islands"].is_object())
    return refuse("relief.islands", "missing or not a JSON object");
  for (const auto& [island, value] : reliefs["islands"].items()) {
    auto one = relief(value, "relief.islands." + island);
    if (!one) return one.error();
    state.islandRelief[island] = *one;
  }
  return state;
}

}  // namespace Atoll::planner
