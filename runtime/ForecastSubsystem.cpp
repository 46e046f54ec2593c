#include "runtime/ForecastSubsystem.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <ctime>

#include "runtime/ForecastJson.h"

namespace Atoll {

static_assert(kMaxForecastSteps == forecast::kMaxProfileSteps,
              "the configuration's horizon limit is the forecaster's profile length");

namespace {

int64_t realtimeNs() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// Aggregates forecast at once (host, shared and the configured islands): an
// aggregate keeps its forecaster island across changes of members and
// capacity, and one that goes away releases it.
constexpr size_t kMaxAggregates = 1024;

}  // namespace

forecast::ForecasterConfig forecasterConfig(const ForecastSettings& settings) {
  forecast::ForecasterConfig config;
  config.stepNs = std::chrono::duration_cast<std::chrono::nanoseconds>(settings.step).count();
  config.profileSteps = settings.horizonSteps();
  config.maxIslands = kMaxAggregates;
  config.model.seasonSteps = settings.seasonSteps();
  config.model.maxHorizon = settings.horizonSteps();
  config.model.trackedHorizons.clear();
  for (int h : {1, 3, 12, 36, 72})
    if (h <= settings.horizonSteps()) config.model.trackedHorizons.push_back(h);
  if (std::find(config.model.trackedHorizons.begin(), config.model.trackedHorizons.end(),
                settings.horizonSteps()) == config.model.trackedHorizons.end() &&
      config.model.trackedHorizons.size() < static_cast<size_t>(forecast::kMaxTrackedHorizons))
    config.model.trackedHorizons.push_back(settings.horizonSteps());
  return config;
}

Result<std::shared_ptr<ForecastSubsystem>> ForecastSubsystem::create(
    const ForecastSettings& settings, const WorkloadBoard& board, IslandSource islands,
    std::string managedRoot, unsigned hostCpus) {
  auto forecaster = forecast::Forecaster::create(forecasterConfig(settings));
  if (!forecaster)
    return Error::invalid("configure forecaster", "forecast", forecaster.error().value,
                          forecaster.error().reason);
  return std::shared_ptr<ForecastSubsystem>(new ForecastSubsystem(
      std::move(forecaster.value()), board, std::move(islands), std::move(managedRoot), hostCpus));
}

ForecastSubsystem::ForecastSubsystem(std::unique_ptr<forecast::Forecaster> forecaster,
                                     const WorkloadBoard& board, IslandSource islands,
                                     std::string managedRoot, unsigned hostCpus)
    : forecaster_(std::move(forecaster)),
      board_(board),
      islands_(std::move(islands)),
      managedRoot_(std::move(managedRoot)),
      hostCpus_(hostCpus),
      stepNs_(forecaster_->config().stepNs) {}

void ForecastSubsystem::redefineAggregates() {
  std::vector<IslandAggregate> wanted =
      islandAggregates(islands_(), board_.workloads(), managedRoot_, hostCpus_);
  std::lock_guard lock(definedMutex_);
  // Each wanted aggregate's definition from the last tick: the same
  // aggregate, else the one of the same name and kind (whose forecaster
  // island it takes over), else none.
  std::vector<std::optional<size_t>> before(wanted.size());
  std::vector<bool> taken(defined_.size(), false);
  auto match = [&](auto&& same) {
    for (size_t i = 0; i < wanted.size(); ++i) {
      for (size_t j = 0; j < defined_.size() && !before[i]; ++j) {
        if (taken[j] || !same(defined_[j].aggregate, wanted[i])) continue;
        before[i] = j;
        taken[j] = true;
      }
    }
  };
  match([](const IslandAggregate& a, const IslandAggregate& b) { return a == b; });
  match([](const IslandAggregate& a, const IslandAggregate& b) {
    return a.name == b.name && a.kind == b.kind;
  });
  // Islands of aggregates that are gone (removed on reload) are released
  // first, so the definitions below reuse their ids.
  for (size_t j = 0; j < defined_.size(); ++j)
    if (!taken[j] && defined_[j].id) releaseAggregate(defined_[j]);

  std::vector<Defined> next;
  for (size_t i = 0; i < wanted.size(); ++i) {
    IslandAggregate& aggregate = wanted[i];
    Defined* previous = before[i] ? &defined_[*before[i]] : nullptr;
    if (previous != nullptr && previous->aggregate == aggregate) {
      next.push_back(*previous);
      continue;
    }
    Defined defined{aggregate, std::nullopt, {}};
    if (aggregate.members.empty() || !(aggregate.capacityCores > 0)) {
      defined.problem = aggregate.members.empty() ? "no workloads" : "no CPUs left to it";
      if (previous != nullptr && previous->id) releaseAggregate(*previous);
      next.push_back(std::move(defined));
      continue;
    }
    forecast::IslandSpec spec;
    spec.name = aggregate.name;
    spec.capacity = aggregate.capacityCores;
    for (uint32_t member : aggregate.members)
      spec.members.push_back({member, forecast::Metric::Cpu});
    // The aggregate keeps its forecaster island across every change, so a
    // long-running daemon whose islands resize and gain and lose members
    // holds one island per aggregate. A resize (same members, new capacity:
    // the planner's own actions) keeps the model; new members restart it,
    // since the old sum no longer describes the new set.
    const char* event = "defined";
    forecast::Parsed<uint32_t> id = [&]() -> forecast::Parsed<uint32_t> {
      if (previous == nullptr || !previous->id) return forecaster_->defineIsland(spec);
      const bool sameMembers = previous->aggregate.members == aggregate.members;
      event = sameMembers ? "redefined" : "restarted";
      return forecaster_->redefineIsland(
          *previous->id, spec,
          sameMembers ? forecast::IslandHistory::Keep : forecast::IslandHistory::Restart);
    }();
    if (id) {
      defined.id = id.value();
      spdlog::debug("event=island_forecast_{} island={} members={} capacity_cores={}", event,
                    aggregate.name, aggregate.members.size(), aggregate.capacityCores);
    } else {
      // A refused redefinition leaves the old set in the forecaster: drop it.
      if (previous != nullptr && previous->id) releaseAggregate(*previous);
      defined.problem = id.error().message();
      if (!islandSlotsExhausted_)
        spdlog::error("event=island_forecast_undefined island={} error=\"{}\"", aggregate.name,
                      defined.problem);
      islandSlotsExhausted_ = true;
    }
    next.push_back(std::move(defined));
  }
  defined_ = std::move(next);
}

void ForecastSubsystem::releaseAggregate(Defined& defined) {
  forecaster_->releaseIsland(*defined.id);
  spdlog::debug("event=island_forecast_released island={}", defined.aggregate.name);
  defined.id.reset();
}

void ForecastSubsystem::tickAt(int64_t nowNs) {
  redefineAggregates();
  forecaster_->tick(nowNs);
  recordHistory(nowNs);
}

void ForecastSubsystem::recordHistory(int64_t nowNs) {
  const std::map<uint32_t, double> actual = board_.latestCpuCores();
  std::lock_guard lock(historyMutex_);
  std::erase_if(history_, [&](const auto& entry) { return !actual.contains(entry.first); });
  // shortTermsNow, not readShortTerm: this runs on the forecaster thread
  // right after its tick, and a read through the seqlock would make every
  // CPU series republish its short term on every tick.
  forecaster_->shortTermsNow(forecast::Metric::Cpu, shortTerms_);
  std::map<uint32_t, std::pair<double, double>> next;
  for (const forecast::ShortTermForecast& shortTerm : shortTerms_)
    if (actual.contains(shortTerm.workload))
      next[shortTerm.workload] = {shortTerm.p50, shortTerm.p95};
  for (const auto& [workload, cores] : actual) {
    HistoryPoint point{nowNs, cores, std::nullopt, std::nullopt};
    if (auto it = pending_.find(workload); it != pending_.end()) {
      point.p50 = it->second.first;
      point.p95 = it->second.second;
    }
    auto& points = history_[workload];
    points.push_back(point);
    while (points.size() > kHistoryPoints) points.pop_front();
  }
  pending_ = std::move(next);
}

nlohmann::json ForecastSubsystem::workloadHistory(const telemetry::Workload& workload) const {
  nlohmann::json points = nlohmann::json::array();
  {
    std::lock_guard lock(historyMutex_);
    if (auto it = history_.find(workload.number); it != history_.end()) {
      for (const HistoryPoint& p : it->second)
        points.push_back({{"timestamp_ns", p.timestampNs},
                          {"actual", p.actual},
                          {"p50", p.p50 ? nlohmann::json(*p.p50) : nlohmann::json(nullptr)},
                          {"p95", p.p95 ? nlohmann::json(*p.p95) : nlohmann::json(nullptr)}});
    }
  }
  return {{"workload", workload.number},
          {"name", workload.cgroup.name},
          {"metric", "cpu"},
          {"unit", "cores"},
          {"points", std::move(points)}};
}

Result<void> ForecastSubsystem::runPhase(Phase, const TickContext&) {
  tickAt(realtimeNs());
  return ok();
}

nlohmann::json ForecastSubsystem::describe() const {
  forecast::ForecasterCounters c = forecaster_->counters();
  std::lock_guard lock(definedMutex_);
  size_t defined = std::count_if(defined_.begin(), defined_.end(),
                                 [](const Defined& d) { return d.id.has_value(); });
  return {{"step_seconds", static_cast<double>(stepNs_) / 1e9},
          {"horizon_steps", forecaster_->config().profileSteps},
          {"samples_consumed", c.consumed},
          {"samples_dropped", c.droppedFullRing + c.droppedInvalidValue + c.droppedBadTimestamp +
                                  c.droppedLate + c.droppedNoSlot},
          {"aggregates_forecast", defined},
          {"forecaster_islands_in_use", forecaster_->islandsInUse()}};
}

nlohmann::json ForecastSubsystem::workloadForecast(const telemetry::Workload& workload,
                                                   forecast::Metric metric) const {
  nlohmann::json out = {
      {"workload", workload.number},
      {"name", workload.cgroup.name},
      {"uuid", workload.cgroup.uuid.empty() ? nlohmann::json(nullptr)
                                            : nlohmann::json(workload.cgroup.uuid)},
      {"cgroup", workload.cgroup.path},
      {"metric", forecast::metricName(metric)},
      {"unit", forecastUnit(metric)},
      {"step_seconds", static_cast<double>(stepNs_) / 1e9}};
  const forecast::SeriesKey key{workload.number, metric};
  forecast::ShortTermSnapshot shortTerm;
  out["short_term"] =
      forecaster_->readShortTerm(key, shortTerm) ? shortTermJson(shortTerm) : nullptr;
  auto profile = std::make_unique<forecast::ProfileSnapshot>();
  if (forecaster_->readProfile(key, *profile)) {
    out["profile"] = profileJson(*profile);
  } else {
    out["profile"] = nullptr;
    out["profile_pending"] = "the first profile is published when the first " +
                             std::to_string(stepNs_ / 1'000'000'000) + " s step closes";
  }
  return out;
}

nlohmann::json ForecastSubsystem::islandsForecast() const {
  std::vector<Defined> defined;
  {
    std::lock_guard lock(definedMutex_);
    defined = defined_;
  }
  nlohmann::json out = nlohmann::json::array();
  auto profile = std::make_unique<forecast::ProfileSnapshot>();
  for (const Defined& d : defined) {
    nlohmann::json entry = {{"name", d.aggregate.name},
                            {"kind", aggregateKindName(d.aggregate.kind)},
                            {"members", d.aggregate.members},
                            {"capacity_cores", d.aggregate.capacityCores},
                            {"profile", nullptr}};
    if (!d.problem.empty()) entry["not_forecast"] = d.problem;
    if (d.id && forecaster_->readIsland(*d.id, *profile))
      entry["profile"] = islandProfileJson(*profile);
    else if (d.id)
      entry["profile_pending"] = "the first profile is published when the first " +
                                 std::to_string(stepNs_ / 1'000'000'000) + " s step closes";
    out.push_back(std::move(entry));
  }
  return {{"step_seconds", static_cast<double>(stepNs_) / 1e9}, {"islands", std::move(out)}};
}

std::vector<ForecastSubsystem::AggregateView> ForecastSubsystem::aggregateViews() const {
  std::vector<Defined> defined;
  {
    std::lock_guard lock(definedMutex_);
    defined = defined_;
  }
  std::vector<AggregateView> out;
  for (const Defined& d : defined) {
    AggregateView view{d.aggregate, std::nullopt, d.problem};
    if (d.id) {
      view.profile.emplace();
      if (!forecaster_->readIsland(*d.id, *view.profile)) {
        view.profile.reset();
        view.problem = "the first profile is published when the first " +
                       std::to_string(stepNs_ / 1'000'000'000) + " s step closes";
      }
    }
    out.push_back(std::move(view));
  }
  return out;
}

bool ForecastSubsystem::readCpuProfile(uint32_t workload, forecast::ProfileSnapshot& out) const {
  return forecaster_->readProfile({workload, forecast::Metric::Cpu}, out);
}

}  // namespace Atoll
