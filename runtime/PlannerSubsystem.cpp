#include "runtime/PlannerSubsystem.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <ctime>
#include <set>

#include "migrate/planner/Contention.h"
#include "numa/CpuSet.h"
#include "runtime/IslandMembership.h"
#include "runtime/IslandSubsystem.h"

namespace Atoll {

namespace {

int64_t realtimeNs() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

numa::CpuList toCpuList(const CpuSet& set) {
  return numa::CpuList(set.indices().begin(), set.indices().end());
}

const ChangeOrigin kOrigin{0, 0, "planner"};

// Telemetry kept per workload for verification: the window before an action
// and the one after it, each one forecast step long, plus slack.
constexpr int kSampleWindows = 3;
constexpr size_t kMaxSamplesPerWorkload = 4096;
// Telemetry comes every tick (a second by default); a longer gap between two
// samples counts this much of it towards an action's outcome.
constexpr int64_t kMaxOutcomeSampleGapNs = 60'000'000'000;
// An open outcome window is journaled each time telemetry has covered another
// twentieth of it: a window spans the forecast horizon (hours by default)
// and telemetry comes every second, and a restart then loses at most a
// twentieth of the window's measurement.
constexpr int64_t kOutcomeJournalParts = 20;

std::optional<double> numberAt(const nlohmann::json& row, const char* key) {
  auto it = row.find(key);
  if (it == row.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

}  // namespace

Result<std::shared_ptr<PlannerSubsystem>> PlannerSubsystem::create(
    SettingsSource settings, const ForecastSubsystem& forecast, const WorkloadBoard& board,
    IslandSource configured, StateStore& store, prometheus::Registry& registry, unsigned hostCpus) {
  auto planner = planner::Planner::create(settings().config);
  if (!planner) return planner.error();
  std::shared_ptr<PlannerSubsystem> out(
      new PlannerSubsystem(std::move(*planner), std::move(settings), forecast, board,
                           std::move(configured), store, registry, hostCpus));
  out->restoreFromJournal();
  return out;
}

PlannerSubsystem::PlannerSubsystem(planner::Planner planner, SettingsSource settings,
                                   const ForecastSubsystem& forecast, const WorkloadBoard& board,
                                   IslandSource configured, StateStore& store,
                                   prometheus::Registry& registry, unsigned hostCpus)
    : settings_(std::move(settings)),
      forecast_(forecast),
      board_(board),
      configured_(std::move(configured)),
      store_(store),
      hostCpus_(hostCpus),
      decisionsTotal_(&prometheus::BuildCounter()
                           .Name("atoll_planner_decisions_total")
                           .Help("Planner decision records by action, deciding rule and whether "
                                 "the decision was taken")
                           .Register(registry)),
      planner_(std::move(planner)),
      verifyWindowNs_(forecast.stepNs()) {}

Result<PlannerSubsystem::Gathered> PlannerSubsystem::gather(int64_t nowNs,
                                                            const PlannerSettings& settings) const {
  Gathered out;
  out.input.nowNs = nowNs;
  std::vector<std::string> problems;
  auto entries = store_.list(Keyspace::Desired, kIslandStatePrefix);
  if (!entries) return entries.error();
  const std::vector<DesiredIsland> desired = desiredIslands(configured_(), *entries, problems);
  numa::CpuList claimed;
  for (const auto& d : desired) claimed = numa::unionOf(claimed, toCpuList(d.settings.cpus));
  numa::CpuList all;
  for (unsigned cpu = 0; cpu < hostCpus_; ++cpu) all.push_back(cpu);

  std::map<uint32_t, std::string> names;
  for (const auto& w : board_.workloads()) names[w.number] = w.cgroup.name;
  const std::map<uint32_t, double> observed = board_.latestCpuCores();

  for (auto& view : forecast_.aggregateViews()) {
    const IslandAggregate& a = view.aggregate;
    if (a.kind == AggregateKind::Host) continue;  // the sum of the others, not an island
    planner::IslandState island;
    island.name = a.name;
    if (a.kind == AggregateKind::Shared) {
      island.cpus = numa::differenceOf(all, claimed);
    } else {
      auto it = std::find_if(desired.begin(), desired.end(),
                             [&](const DesiredIsland& d) { return d.settings.name == a.name; });
      if (it != desired.end()) {
        island.cpus = toCpuList(it->settings.cpus);
        island.memNodes = toCpuList(it->settings.mems);
      }
    }
    // The CPUs desired now (a resize lands in the desired state first); the
    // forecaster's capacity only where no CPU list is known.
    if (island.cpus.empty()) island.capacityCores = a.capacityCores;
    if (auto mode = settings.islandModes.find(a.name); mode != settings.islandModes.end())
      island.modeOverride = mode->second;
    for (uint32_t member : a.members)
      if (auto it = observed.find(member); it != observed.end()) island.observedCores += it->second;
    nlohmann::json entry = {{"name", a.name},
                            {"kind", aggregateKindName(a.kind)},
                            {"cpus", numa::formatCpuList(island.cpus)},
                            {"capacity_cores", island.capacity()},
                            {"members", a.members.size()},
                            {"mode", planner::modeName(planner_.modeOf(island))}};
    if (!view.profile) {
      entry["planned"] = false;
      entry["not_planned"] = view.problem.empty() ? "no forecast yet" : view.problem;
      out.islands.push_back(std::move(entry));
      continue;
    }
    entry["planned"] = true;
    island.profile = *view.profile;
    out.passKey += a.name + "@" + std::to_string(view.profile->originStepNs) + "/" +
                   std::to_string(a.members.size()) + ";";
    for (uint32_t member : a.members) {
      planner::VmState vm;
      vm.workload = member;
      vm.name = names.count(member) ? names[member] : std::string();
      if (vm.name.empty()) vm.name = std::to_string(member);  // a cgroup without a name
      vm.island = a.name;
      if (!forecast_.readCpuProfile(member, vm.demand)) continue;  // nothing to move it by yet
      if (auto it = observed.find(member); it != observed.end()) vm.observedCores = it->second;
      if (auto it = lastMoveNs_.find(vm.name); it != lastMoveNs_.end()) vm.lastMoveNs = it->second;
      out.input.vms.push_back(std::move(vm));
    }
    out.input.islands.push_back(std::move(island));
    out.islands.push_back(std::move(entry));
  }
  if (out.passKey.empty()) out.passKey = "unplanned:" + out.islands.dump();
  return out;
}

std::vector<planner::Decision> PlannerSubsystem::noActionRecords(const Gathered& gathered) const {
  const planner::PlannerConfig& config = planner_.config();
  std::vector<planner::Decision> out;
  auto none = [&](std::string reason) {
    planner::Decision d;
    d.atNs = gathered.input.nowNs;
    d.action = planner::ActionKind::None;
    d.rule = planner::Rule::NoRisk;
    d.reason = "no action: " + std::move(reason);
    return d;
  };
  if (gathered.input.islands.empty()) {
    std::string why = "no island has a published forecast yet";
    for (const auto& island : gathered.islands)
      if (island.contains("not_planned"))
        why += fmt::format("; {}: {}", island["name"].get<std::string>(),
                           island["not_planned"].get<std::string>());
    out.push_back(none(why));
    return out;
  }
  for (const planner::IslandState& island : gathered.input.islands) {
    planner::HorizonContention c = planner::horizonContention(
        island.profile, config.horizonSteps, island.capacity(), config.riskThreshold);
    // The planner's own test of "at risk": past the risk threshold, with
    // unmet demand, and with a p50 peak that reaches the floor share of the
    // capacity. The record names the part that kept the island out.
    std::string why;
    if (c.probability < config.riskThreshold || c.unmetCoreSeconds <= 0)
      why = fmt::format(
          "island {} stays within its {:.2f} cores over the horizon (P(demand > capacity) = "
          "{:.3f} < {:.3f}, p95 peak {:.2f} cores)",
          island.name, island.capacity(), c.probability, config.riskThreshold, c.p95Peak);
    else
      why = fmt::format(
          "island {} reaches past its {:.2f} cores through its forecast's upper tail alone "
          "(P(demand > capacity) = {:.3f} >= {:.3f}, but p50 peak {:.2f} cores < "
          "min_risk_p50_share {:.2f} x capacity)",
          island.name, island.capacity(), c.probability, config.riskThreshold, c.p50Peak,
          config.minRiskP50Share);
    planner::Decision d = none(std::move(why));
    planner::IslandView view;
    view.island = island.name;
    view.capacityBefore = view.capacityAfter = island.capacity();
    view.p50Peak = c.p50Peak;
    view.p95Peak = c.p95Peak;
    view.contentionBefore = view.contentionAfter = c.probability;
    view.overloadBefore = view.overloadAfter = c.unmetCoreSeconds;
    view.trust = planner_.trust(island.name);
    d.islands.push_back(view);
    d.firstRiskStep = c.firstRiskStep;
    out.push_back(std::move(d));
  }
  return out;
}

namespace {

// The slot after a ring's newest record (its latest revision): starting again
// at slot 0 would overwrite the newest records first once the ring has
// wrapped.
uint64_t slotAfterNewest(const std::vector<StateEntry>& entries, std::string_view prefix,
                         size_t slots) {
  uint64_t newestRevision = 0, next = 0;
  for (const StateEntry& entry : entries) {
    const std::string_view slotText = std::string_view(entry.key).substr(prefix.size());
    uint64_t slot = 0;
    const auto [end, error] =
        std::from_chars(slotText.data(), slotText.data() + slotText.size(), slot);
    if (error == std::errc() && end == slotText.data() + slotText.size() && slot < slots &&
        entry.revision > newestRevision) {
      newestRevision = entry.revision;
      next = slot + 1;
    }
  }
  return next;
}

}  // namespace

void PlannerSubsystem::restoreFromJournal() {
  // The dwell guard reads when each VM last moved, from both rings (a
  // journal written before the action ring has its moves in the decision
  // ring only).
  auto noteMove = [&](const nlohmann::json& d) {
    if (!d.is_object() ||
        d.value("action", "") != planner::actionName(planner::ActionKind::MoveVm) ||
        !d.value("execute", false) || d.value("failed", false) || !d.contains("vm_name") ||
        !d["vm_name"].is_string() || !d.contains("at_ns") || !d["at_ns"].is_number_integer())
      return;
    int64_t& last =
        lastMoveNs_.try_emplace(d["vm_name"].get<std::string>(), planner::kNeverNs).first->second;
    last = std::max(last, d["at_ns"].get<int64_t>());
  };
  if (auto facts = store_.list(Keyspace::Facts, std::string(kPlannerDecisionPrefix))) {
    nextSlot_ = slotAfterNewest(*facts, kPlannerDecisionPrefix, kPlannerHistory);
    for (const StateEntry& entry : *facts) noteMove(entry.value);
  }
  // Cooldowns, budgets and hysteresis count the executed actions; ids go on
  // after theirs, so a record's "reverses" names one decision across
  // restarts.
  if (auto facts = store_.list(Keyspace::Facts, std::string(kPlannerActionPrefix))) {
    nextActionSlot_ = slotAfterNewest(*facts, kPlannerActionPrefix, kPlannerActionHistory);
    for (const StateEntry& entry : *facts) {
      auto action = planner::executedActionFromJson(entry.value);
      if (!action) {
        spdlog::warn("event=planner_journal_skipped key={} error=\"{}\"", entry.key,
                     action.error().message());
        continue;
      }
      planner_.restoreExecuted(*action, entry.value.value("failed", false));
      noteMove(entry.value);
      ++restoredActions_;
    }
  }
  if (restoredActions_ > 0)
    spdlog::info("event=planner_restored actions={} (their cooldowns, budgets and dwell hold)",
                 restoredActions_);
  restoreTuning();
  restoreOutcomes();
}

void PlannerSubsystem::restoreOutcomes() {
  auto entries = store_.list(Keyspace::Facts, std::string(kPlannerOutcomePrefix));
  if (!entries) {
    spdlog::warn("event=planner_outcomes_unread error=\"{}\"", entries.error().message());
    return;
  }
  for (const StateEntry& entry : *entries) {
    auto refused = [&](const std::string& why) {
      ++outcomeRecordsRefused_;
      spdlog::warn("event=planner_outcome_skipped key={} error=\"{}\" (no outcome for it)",
                   entry.key, why);
      if (auto removed = store_.remove(Keyspace::Facts, entry.key, kOrigin); !removed)
        spdlog::warn("event=planner_journal_failed error=\"{}\"", removed.error().message());
    };
    const nlohmann::json& v = entry.value;
    if (!v.is_object() || !v.contains("decision")) {
      refused("not an outcome record");
      continue;
    }
    auto decision = planner::executedActionFromJson(v["decision"]);
    if (!decision) {
      refused(decision.error().message());
      continue;
    }
    PendingOutcome o;
    o.decision = std::move(*decision);
    bool complete = true;
    for (auto [field, into] :
         {std::pair{"from_ns", &o.fromNs}, std::pair{"until_ns", &o.untilNs},
          std::pair{"last_ns", &o.lastNs}, std::pair{"measured_ns", &o.measuredNs}}) {
      if (!v.contains(field) || !v[field].is_number_integer()) {
        refused(std::string("'") + field + "' is missing or not an integer");
        complete = false;
        break;
      }
      *into = v[field].get<int64_t>();
    }
    if (!complete) continue;
    if (!v.contains("realised_core_s") || !v["realised_core_s"].is_number() ||
        !std::isfinite(v["realised_core_s"].get<double>())) {
      refused("'realised_core_s' is missing or not a finite number");
      continue;
    }
    o.realised = v["realised_core_s"].get<double>();
    if (o.untilNs <= o.fromNs || o.lastNs < o.fromNs || o.lastNs > o.untilNs || o.measuredNs < 0 ||
        o.measuredNs > o.untilNs - o.fromNs || o.decision.islands.empty()) {
      refused("its window does not hold together");
      continue;
    }
    if (!planner_.reopenOutcome(o.decision.id)) {
      refused("decision " + std::to_string(o.decision.id) +
              " is not an executed action the planner restored");
      continue;
    }
    o.resumed = true;
    o.journaledNs = o.lastNs;
    measuring_.push_back(std::move(o));
    ++outcomesRestored_;
  }
  if (outcomesRestored_ > 0)
    spdlog::info("event=planner_outcomes_restored windows={} (measuring goes on)",
                 outcomesRestored_);
}

void PlannerSubsystem::journalOutcome(PendingOutcome& o) {
  o.journaledNs = o.lastNs;
  journal(std::string(kPlannerOutcomePrefix) + std::to_string(o.decision.id),
          {{"decision", planner::toJson(o.decision)},
           {"from_ns", o.fromNs},
           {"until_ns", o.untilNs},
           {"last_ns", o.lastNs},
           {"realised_core_s", o.realised},
           {"measured_ns", o.measuredNs}});
}

void PlannerSubsystem::forgetOutcome(uint64_t decision) {
  auto removed = store_.remove(
      Keyspace::Facts, std::string(kPlannerOutcomePrefix) + std::to_string(decision), kOrigin);
  if (!removed)
    spdlog::warn("event=planner_journal_failed error=\"{}\"", removed.error().message());
}

void PlannerSubsystem::restoreTuning() {
  const std::string key(kPlannerTuningKey);
  auto refused = [&](const std::string& why) {
    ++tuningRecordsRefused_;
    spdlog::warn("event=planner_tuning_skipped key={} error=\"{}\" (the defaults hold)", key, why);
  };
  auto entry = store_.get(Keyspace::Facts, key);
  if (!entry) return refused(entry.error().message());
  if (!*entry) return;
  auto state = planner::tuningStateFromJson((*entry)->value);
  if (!state) return refused(state.error().message());
  // The islands the planner can see now: an island removed since has no
  // forecast to trust.
  std::set<std::string> islands{std::string(kSharedAggregateName)};
  std::vector<std::string> problems;
  std::vector<StateEntry> overlays;
  if (auto listed = store_.list(Keyspace::Desired, kIslandStatePrefix)) overlays = *listed;
  for (const DesiredIsland& d : desiredIslands(configured_(), overlays, problems))
    islands.insert(d.settings.name);
  auto restored = planner_.restoreTuning(*state, islands);
  if (!restored) return refused(restored.error().message());
  tuningRestored_ = true;
  spdlog::info(
      "event=planner_tuning_restored margin={:.3f} islands={} changes={} margin_clamped={} "
      "trust_clamped=[{}] dropped_islands=[{}]",
      planner_.margin(), planner_.tuningState().trust.size(), planner_.tuningChanges(),
      restored->marginClamped, fmt::join(restored->trustClamped, ","),
      fmt::join(restored->droppedIslands, ","));
}

std::vector<planner::TuningRecord> PlannerSubsystem::recordOutcome(uint64_t decision,
                                                                   double realisedRelief,
                                                                   int64_t nowNs) {
  std::lock_guard lock(mutex_);
  return recordOutcomeLocked(decision, realisedRelief, nowNs);
}

std::vector<planner::TuningRecord> PlannerSubsystem::recordOutcomeLocked(uint64_t decision,
                                                                         double realisedRelief,
                                                                         int64_t nowNs) {
  std::vector<planner::TuningRecord> added =
      planner_.recordOutcome(decision, realisedRelief, nowNs);
  if (added.empty()) return added;
  for (const planner::TuningRecord& r : added)
    spdlog::info("event=planner_tuning decision={} island={} field={} before={:.3f} after={:.3f}",
                 r.decision, r.island.empty() ? "(host)" : r.island, r.field, r.before, r.after);
  nlohmann::json entry = planner::toJson(planner_.tuningState());
  entry["saved_ns"] = nowNs;
  journal(std::string(kPlannerTuningKey), entry);
  return added;
}

void PlannerSubsystem::recordAction(const planner::Decision& decision, bool failed, int64_t nowNs) {
  nlohmann::json entry = planner::toJson(decision);
  entry["failed"] = failed;
  entry["settled_ns"] = nowNs;
  journal(kPlannerActionPrefix, nextActionSlot_++ % kPlannerActionHistory, entry);
}

void PlannerSubsystem::journal(std::string_view prefix, uint64_t slot,
                               const nlohmann::json& entry) {
  journal(std::string(prefix) + std::to_string(slot), entry);
}

void PlannerSubsystem::journal(const std::string& key, const nlohmann::json& entry) {
  auto stored = store_.put(Keyspace::Facts, key, entry, kOrigin);
  if (!stored) {
    // Logged once per distinct error: a failing store fails every pass.
    if (lastJournalError_ != stored.error().message())
      spdlog::error("event=planner_journal_failed error=\"{}\"", stored.error().message());
    lastJournalError_ = stored.error().message();
  }
}

void PlannerSubsystem::record(const planner::Decision& decision, planner::Mode mode) {
  nlohmann::json entry = planner::toJson(decision);
  entry["mode"] = planner::modeName(mode);
  ++recorded_;
  journal(kPlannerDecisionPrefix, nextSlot_++ % kPlannerHistory, entry);
  decisionsTotal_
      ->Add({{"action", std::string(planner::actionName(decision.action))},
             {"rule", std::string(planner::ruleName(decision.rule))},
             {"taken", decision.taken ? "true" : "false"}})
      .Increment();
  history_.push_back(std::move(entry));
  while (history_.size() > kPlannerHistory) history_.pop_front();
}

Result<void> PlannerSubsystem::planAt(int64_t nowNs) {
  const PlannerSettings settings = settings_();
  std::lock_guard lock(mutex_);
  planner_.setMode(settings.config.mode);
  sampleTelemetry(nowNs);
  auto gathered = gather(nowNs, settings);
  if (!gathered) return gathered.error();
  verifyDue(nowNs, gathered->input);
  accrueOutcomes(nowNs, gathered->input);
  // Profiles change only when a step closes: one pass per published step
  // (or change of islands), so guards and the journal see each step once.
  // What is executed reads the islands desired now.
  if (passes_ > 0 && gathered->passKey == lastPassKey_) {
    lastInput_ = std::move(*gathered);
    return ok();
  }
  lastPassKey_ = gathered->passKey;
  ++passes_;

  planner::PlanResult result = planner_.plan(gathered->input);
  std::vector<planner::Decision> decisions = result.decisions;
  if (decisions.empty()) decisions = noActionRecords(*gathered);
  nlohmann::json records = nlohmann::json::array();
  for (const planner::Decision& d : decisions) {
    // As the planner rules: an action is enforced only when every island it
    // touches is in enforce mode.
    planner::Mode mode = settings.config.mode;
    bool touches = false, allEnforce = true;
    for (const auto& island : gathered->input.islands) {
      if (island.name != d.toIsland && island.name != d.fromIsland) continue;
      touches = true;
      allEnforce = allEnforce && planner_.modeOf(island) == planner::Mode::Enforce;
    }
    if (touches) mode = allEnforce ? planner::Mode::Enforce : planner::Mode::Observe;
    record(d, mode);
    records.push_back(history_.back());
    if (d.execute) pending_.push_back(d);
    spdlog::log(d.taken ? spdlog::level::info : spdlog::level::debug,
                "event=planner_decision id={} action={} rule={} taken={} execute={} reason=\"{}\"",
                d.id, planner::actionName(d.action), planner::ruleName(d.rule), d.taken, d.execute,
                d.reason);
  }
  latest_ = {{"pass", passes_},
             {"at_ns", nowNs},
             {"mode", planner::modeName(settings.config.mode)},
             {"margin", planner_.margin()},
             {"horizon_steps", planner_.config().horizonSteps},
             {"islands", gathered->islands},
             {"vms", gathered->input.vms.size()},
             {"decisions", std::move(records)}};
  lastInput_ = std::move(*gathered);
  return ok();
}

double PlannerSubsystem::reliefRate(const planner::Decision& d, const planner::PlanInput& input) {
  auto island = [&](const std::string& name) -> const planner::IslandState* {
    for (const planner::IslandState& i : input.islands)
      if (i.name == name) return &i;
    return nullptr;
  };
  auto excess = [](double demand, double capacity) { return std::max(0.0, demand - capacity); };
  if (d.islands.empty()) return std::nan("");
  const planner::IslandView& relieved = d.islands.front();
  const planner::IslandState* now = island(relieved.island);
  if (!now) return std::nan("");
  if (d.action == planner::ActionKind::ResizeIsland) {
    // Demand is CPU time used, which cannot pass the capacity it ran on:
    // the relief is the use above the receiver's old capacity, up to the
    // cores it was given.
    return excess(now->observedCores, relieved.capacityBefore) -
           excess(now->observedCores, relieved.capacityAfter);
  }
  if (d.action != planner::ActionKind::MoveVm || d.islands.size() < 2) return std::nan("");
  const planner::IslandView& targetView = d.islands[1];
  const planner::IslandState* target = island(targetView.island);
  if (!target) return std::nan("");
  // The VM is counted where telemetry sees it now: in the source until the
  // islands subsystem has made the pin real, in the target after.
  double vmCores = 0;
  std::string vmIsland;
  // By name where both have one: workload numbers are given anew when the
  // daemon restarts, and a window can span a restart.
  for (const planner::VmState& vm : input.vms)
    if (!d.vmName.empty() && !vm.name.empty() ? vm.name == d.vmName : vm.workload == d.vm) {
      vmCores = vm.observedCores;
      vmIsland = vm.island;
    }
  const double sourceWithout = now->observedCores - (vmIsland == now->name ? vmCores : 0.0);
  const double targetWith = target->observedCores + (vmIsland == target->name ? 0.0 : vmCores);
  // What the source was spared, less what the target took on.
  return excess(sourceWithout + vmCores, relieved.capacityBefore) -
         excess(sourceWithout, relieved.capacityBefore) -
         (excess(targetWith, targetView.capacityBefore) -
          excess(targetWith - vmCores, targetView.capacityBefore));
}

void PlannerSubsystem::accrueOutcomes(int64_t nowNs, const planner::PlanInput& input) {
  const bool fresh = lastSampleNs_ != outcomesSampledNs_;  // telemetry came since
  outcomesSampledNs_ = lastSampleNs_;
  std::erase_if(measuring_, [&](PendingOutcome& o) {
    const int64_t until = std::min(nowNs, o.untilNs);
    if (fresh && until > o.lastNs) {
      const double rate = reliefRate(o.decision, input);
      if (std::isnan(rate)) {
        spdlog::info(
            "event=planner_outcome_dropped decision={} reason=\"an island it touched is gone\"",
            o.decision.id);
        ++outcomesDropped_;
        forgetOutcome(o.decision.id);
        return true;
      }
      if (o.resumed) {
        // The first telemetry after a restart: the time the daemon was
        // down is neither relief nor its absence.
        o.resumed = false;
      } else {
        // A gap in telemetry (a stalled daemon, a restart of telemetry) is
        // not counted as relief or as its absence.
        const int64_t span = std::min(until - o.lastNs, kMaxOutcomeSampleGapNs);
        o.realised += rate * double(span) / 1e9;
        o.measuredNs += span;
      }
      o.lastNs = until;
      if (nowNs < o.untilNs &&
          o.lastNs - o.journaledNs >= (o.untilNs - o.fromNs) / kOutcomeJournalParts)
        journalOutcome(o);
    }
    if (nowNs < o.untilNs) return false;
    forgetOutcome(o.decision.id);
    // Relief measured over a part of the window would read as relief that
    // did not come, and teach the planner to distrust a good forecast.
    if (2 * o.measuredNs < o.untilNs - o.fromNs) {
      spdlog::info(
          "event=planner_outcome_dropped decision={} reason=\"telemetry covered {:.0f} s of its "
          "{:.0f} s window\"",
          o.decision.id, double(o.measuredNs) / 1e9, double(o.untilNs - o.fromNs) / 1e9);
      ++outcomesDropped_;
      return true;
    }
    const double predicted =
        o.decision.islands.empty()
            ? 0.0
            : o.decision.islands.front().overloadBefore - o.decision.islands.front().overloadAfter;
    ++outcomesRecorded_;
    lastOutcome_ = {{"decision", o.decision.id},
                    {"island", o.decision.islands.empty() ? "" : o.decision.islands.front().island},
                    {"predicted_core_s", predicted},
                    {"realised_core_s", o.realised},
                    {"measured_s", double(o.measuredNs) / 1e9},
                    {"at_ns", nowNs}};
    spdlog::info(
        "event=planner_outcome decision={} predicted_core_s={:.2f} realised_core_s={:.2f} "
        "measured_s={:.0f}",
        o.decision.id, predicted, o.realised, double(o.measuredNs) / 1e9);
    recordOutcomeLocked(o.decision.id, o.realised, nowNs);
    return true;
  });
}

Result<void> PlannerSubsystem::execute(const planner::Decision& decision, int64_t nowNs) {
  if (decision.action == planner::ActionKind::MoveVm) {
    // The islands subsystem makes the pin real (cgroup and libvirt
    // membership, memory following the island's nodes). The key names the
    // VM as telemetry shows it (its libvirt name).
    if (decision.vmName.empty() || decision.vmName.find('/') != std::string::npos)
      return Error::invalid("execute decision", "planner", decision.vmName,
                            "a VM move needs the VM's name without '/'");
    if (decision.toIsland.empty())
      return Error::invalid("execute decision", "planner", std::to_string(decision.id),
                            "a VM move needs a target island");
    const std::string key = std::string(kPinStatePrefix) + decision.vmName;
    auto stored =
        store_.put(Keyspace::Desired, key,
                   {{"island", decision.toIsland}, {"source", kPinSourcePlanner}}, kOrigin);
    if (!stored) return stored.error();
    lastMoveNs_[decision.vmName] = nowNs;
    spdlog::info("event=planner_move decision={} vm={} from={} to={}", decision.id, decision.vmName,
                 decision.fromIsland, decision.toIsland);
    return ok();
  }
  if (decision.action != planner::ActionKind::ResizeIsland)
    return Error::invalid("execute decision", "planner", std::to_string(decision.id),
                          "nothing to execute for a decision without an action");
  if (!lastInput_)
    return Error::invalid("execute decision", "planner", std::to_string(decision.id),
                          "no planner input");
  // The shared island is what no island claims: growing or shrinking the
  // other side of the resize is enough. The donor gives first: should the
  // receiver's write then fail, the CPUs fall to the shared island instead
  // of being claimed by two islands at once.
  std::vector<const planner::IslandState*> ordered;
  for (const std::string* name : {&decision.fromIsland, &decision.toIsland})
    for (const auto& island : lastInput_->input.islands)
      if (island.name == *name) ordered.push_back(&island);
  for (const planner::IslandState* state : ordered) {
    const planner::IslandState& island = *state;
    numa::CpuList cpus;
    if (island.name == decision.toIsland)
      cpus = numa::unionOf(island.cpus, decision.cpusMoved);
    else
      cpus = numa::differenceOf(island.cpus, decision.cpusMoved);
    if (island.name == kSharedAggregateName) continue;
    // Only the CPUs change: what an operator set on the island (exclusivity,
    // limits, selectors) stays as desired.
    const std::string key = std::string(kIslandStatePrefix) + island.name;
    auto existing = store_.get(Keyspace::Desired, key);
    if (!existing) return existing.error();
    nlohmann::json value = nlohmann::json::object();
    if (*existing && (*existing)->value.is_object()) value = (*existing)->value;
    value["cpus"] = numa::formatCpuList(cpus);
    if (!value.contains("mems") && !island.memNodes.empty())
      value["mems"] = numa::formatCpuList(island.memNodes);
    auto stored = store_.put(Keyspace::Desired, key, value, kOrigin);
    if (!stored) return stored.error();
    spdlog::info("event=planner_resize decision={} island={} cpus={}", decision.id, island.name,
                 numa::formatCpuList(cpus));
  }
  return ok();
}

Result<void> PlannerSubsystem::actAt(int64_t nowNs) {
  std::lock_guard lock(mutex_);
  std::vector<planner::Decision> pending = std::move(pending_);
  pending_.clear();
  for (const planner::Decision& d : pending) {
    if (auto done = execute(d, nowNs); !done) {
      ++executionFailures_;
      spdlog::warn("event=planner_execute_failed decision={} error=\"{}\"", d.id,
                   done.error().message());
      planner_.reportFailed(d.id, nowNs);
      recordAction(d, true, nowNs);
    } else {
      ++executed_;
      planner_.reportCompleted(d.id, nowNs);
      recordAction(d, false, nowNs);
      // A revert is not verified again: that would invite a flip-flop. A
      // decision that takes back an earlier one on its own gain (past the
      // hysteresis) is an action like any other.
      if (d.rule != planner::Rule::Revert) verifying_.push_back({d.id, nowNs, touchedBy(d)});
      // The relief it brings is measured over the horizon its benefit was
      // predicted for, and fed back to the outcome loop.
      if (d.rule != planner::Rule::Revert && d.horizonSeconds > 0) {
        const int64_t until = nowNs + static_cast<int64_t>(d.horizonSeconds * 1e9);
        measuring_.push_back({d, nowNs, until, nowNs, 0.0, 0, false, nowNs});
        journalOutcome(measuring_.back());
      }
    }
  }
  return ok();
}

void PlannerSubsystem::sampleTelemetry(int64_t nowNs) {
  std::optional<nlohmann::json> latest = board_.latest();
  if (!latest || !latest->contains("timestamp_ns") || !(*latest)["timestamp_ns"].is_number())
    return;
  const int64_t at = (*latest)["timestamp_ns"].get<int64_t>();
  if (at == lastSampleNs_) return;
  lastSampleNs_ = at;
  const std::map<uint32_t, double> cores = board_.latestCpuCores();
  if (latest->contains("workloads") && (*latest)["workloads"].is_array()) {
    for (const nlohmann::json& row : (*latest)["workloads"]) {
      if (!row.contains("workload") || !row["workload"].is_number_unsigned()) continue;
      const uint32_t number = row["workload"].get<uint32_t>();
      Sample sample;
      sample.atNs = at;
      if (auto p50 = numberAt(row, "runq_p50_us")) sample.runQueueLatencyNs = *p50 * 1000.0;
      if (auto it = cores.find(number); it != cores.end()) sample.cores = it->second;
      samples_[number].push_back(sample);
    }
  }
  const int64_t keepFrom = nowNs - kSampleWindows * verifyWindowNs_;
  for (auto it = samples_.begin(); it != samples_.end();) {
    auto& series = it->second;
    while (!series.empty() &&
           (series.front().atNs < keepFrom || series.size() > kMaxSamplesPerWorkload))
      series.pop_front();
    it = series.empty() ? samples_.erase(it) : std::next(it);
  }
}

PlannerSubsystem::Window PlannerSubsystem::measure(const std::vector<uint32_t>& workloads,
                                                   int64_t fromNs, int64_t toNs) const {
  Window out;
  double latencySum = 0;
  size_t latencyCount = 0;
  for (uint32_t workload : workloads) {
    auto it = samples_.find(workload);
    if (it == samples_.end()) continue;
    double coresSum = 0;
    size_t coresCount = 0;
    for (const Sample& s : it->second) {
      if (s.atNs < fromNs || s.atNs >= toNs) continue;
      ++out.samples;
      if (s.runQueueLatencyNs) {
        latencySum += *s.runQueueLatencyNs;
        ++latencyCount;
      }
      if (s.cores) {
        coresSum += *s.cores;
        ++coresCount;
      }
    }
    if (coresCount > 0) out.cores += coresSum / double(coresCount);
  }
  if (latencyCount > 0) out.runQueueLatencyNs = latencySum / double(latencyCount);
  return out;
}

std::vector<uint32_t> PlannerSubsystem::touchedBy(const planner::Decision& decision) const {
  if (decision.action == planner::ActionKind::MoveVm) return {decision.vm};
  std::vector<uint32_t> out;
  if (!lastInput_) return out;
  for (const planner::VmState& vm : lastInput_->input.vms)
    if (vm.island == decision.toIsland || vm.island == decision.fromIsland)
      out.push_back(vm.workload);
  return out;
}

void PlannerSubsystem::verifyDue(int64_t nowNs, const planner::PlanInput& input) {
  std::vector<Verification> waiting;
  for (Verification& v : verifying_) {
    if (nowNs < v.executedNs + verifyWindowNs_) {
      waiting.push_back(std::move(v));
      continue;
    }
    const Window before = measure(v.workloads, v.executedNs - verifyWindowNs_, v.executedNs);
    const Window after = measure(v.workloads, v.executedNs, v.executedNs + verifyWindowNs_ + 1);
    if (before.samples == 0 || after.samples == 0) {
      spdlog::info("event=planner_verify_skipped decision={} reason=\"no telemetry {} the action\"",
                   v.decision, before.samples == 0 ? "before" : "after");
      continue;
    }
    planner::MoveVerification measured;
    measured.decision = v.decision;
    measured.nowNs = nowNs;
    measured.runQueueLatencyBeforeNs = before.runQueueLatencyNs;
    measured.runQueueLatencyAfterNs = after.runQueueLatencyNs;
    measured.throughputBefore = before.cores;
    measured.throughputAfter = after.cores;
    planner::PlanInput now = input;
    now.nowNs = nowNs;
    const uint64_t refusedBefore = planner_.verificationsRefused();
    std::optional<planner::Decision> revert = planner_.verify(measured, now);
    if (planner_.verificationsRefused() != refusedBefore) {
      spdlog::warn("event=planner_verify_refused decision={} reason=\"{}\"", v.decision,
                   planner_.lastVerificationRefusal());
      continue;
    }
    ++verified_;
    spdlog::info(
        "event=planner_verify decision={} runq_ns_before={:.0f} runq_ns_after={:.0f} "
        "cores_before={:.3f} cores_after={:.3f} revert={}",
        v.decision, before.runQueueLatencyNs, after.runQueueLatencyNs, before.cores, after.cores,
        revert ? std::to_string(revert->id) : std::string("none"));
    if (revert) {
      ++reverts_;
      record(*revert, revert->execute ? planner::Mode::Enforce : planner::Mode::Observe);
      if (revert->execute) pending_.push_back(*revert);
      continue;
    }
    // A revert the guards refused is explained like any declined decision.
    const auto& history = planner_.history();
    if (!history.empty() && history.back().reverses == v.decision && !history.back().taken)
      record(history.back(), planner::Mode::Observe);
  }
  verifying_ = std::move(waiting);
}

Result<void> PlannerSubsystem::runPhase(Phase phase, const TickContext&) {
  return phase == Phase::Plan ? planAt(realtimeNs()) : actAt(realtimeNs());
}

nlohmann::json PlannerSubsystem::describe() const {
  std::lock_guard lock(mutex_);
  nlohmann::json out = {{"mode", planner::modeName(planner_.config().mode)},
                        {"passes", passes_},
                        {"decisions_recorded", recorded_},
                        {"actions_restored", restoredActions_},
                        {"tuning_restored", tuningRestored_},
                        {"tuning_records_refused", tuningRecordsRefused_},
                        {"executed", executed_},
                        {"execution_failures", executionFailures_},
                        {"verified", verified_},
                        {"reverts", reverts_},
                        {"verifications_refused", planner_.verificationsRefused()},
                        {"verifying", verifying_.size()},
                        {"outcomes_measuring", measuring_.size()},
                        {"outcomes_recorded", outcomesRecorded_},
                        {"outcomes_dropped", outcomesDropped_},
                        {"outcomes_restored", outcomesRestored_},
                        {"outcome_records_refused", outcomeRecordsRefused_},
                        {"in_flight", planner_.inFlight().size()}};
  if (!lastJournalError_.empty()) out["journal_error"] = lastJournalError_;
  return out;
}

nlohmann::json PlannerSubsystem::planJson() const {
  std::lock_guard lock(mutex_);
  return latest_;
}

nlohmann::json PlannerSubsystem::historyJson() const {
  std::lock_guard lock(mutex_);
  return {
      {"limit", kPlannerHistory},
      {"decisions", nlohmann::json(std::vector<nlohmann::json>(history_.begin(), history_.end()))}};
}

nlohmann::json PlannerSubsystem::tuningJson() const {
  std::lock_guard lock(mutex_);
  nlohmann::json out = planner_.tuningJson();
  out["outcomes_measuring"] = measuring_.size();
  out["outcomes_recorded"] = outcomesRecorded_;
  if (!lastOutcome_.is_null()) out["last_outcome"] = lastOutcome_;
  return out;
}

}  // namespace Atoll
