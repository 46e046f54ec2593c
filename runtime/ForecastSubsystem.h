#pragma once
// The forecast subsystem (forecast phase): owns the forecaster configured from
// [forecast], ticks it (draining the samples telemetry pushed into its ring),
// and keeps the host, the shared island and every configured island defined
// as aggregates of their members' CPU demand against their CPU capacity.
// The forecaster publishes per workload and per aggregate; the API reads
// those publications on its own threads without blocking the tick.
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "forecast/Forecaster.h"
#include "runtime/Config.h"
#include "runtime/IslandMembership.h"
#include "runtime/Subsystem.h"
#include "runtime/WorkloadBoard.h"

namespace Atoll {

// The forecaster's configuration for these settings.
forecast::ForecasterConfig forecasterConfig(const ForecastSettings& settings);

class ForecastSubsystem final : public Subsystem {
 public:
  using IslandSource = std::function<std::vector<IslandSettings>()>;

  // `islands` gives the configured islands at each tick (they change on
  // reload); `managedRoot` is the islands' parent cgroup below the mount.
  static Result<std::shared_ptr<ForecastSubsystem>> create(const ForecastSettings& settings,
                                                           const WorkloadBoard& board,
                                                           IslandSource islands,
                                                           std::string managedRoot,
                                                           unsigned hostCpus);

  // Where telemetry pushes samples (any thread).
  forecast::SampleRing& ring() { return forecaster_->ring(0); }

  std::string_view name() const override { return "forecast"; }
  bool runsIn(Phase phase) const override { return phase == Phase::Forecast; }
  Result<void> runPhase(Phase phase, const TickContext& context) override;
  nlohmann::json describe() const override;

  // One tick at `nowNs` (realtime), as runPhase does it.
  void tickAt(int64_t nowNs);

  // Any thread. The workload's identity, short-term forecast and profile of
  // one metric (each null until published).
  nlohmann::json workloadForecast(const telemetry::Workload& workload,
                                  forecast::Metric metric) const;
  // Any thread. The workload's recent CPU demand, one point per tick: the
  // actual value and the short-term p50/p95 forecast for it made a tick
  // before (nulls where there was none).
  nlohmann::json workloadHistory(const telemetry::Workload& workload) const;
  // Any thread. Each aggregate with its members and, once published, its
  // profile and contention score.
  nlohmann::json islandsForecast() const;

  // Any thread. Each aggregate (host, shared, configured islands) with its
  // latest published profile, for the planner.
  struct AggregateView {
    IslandAggregate aggregate;
    std::optional<forecast::ProfileSnapshot> profile;  // none until published
    std::string problem;                               // why it is not forecast
  };
  std::vector<AggregateView> aggregateViews() const;
  // Any thread. A workload's latest CPU demand profile, false until published.
  bool readCpuProfile(uint32_t workload, forecast::ProfileSnapshot& out) const;
  int64_t stepNs() const { return stepNs_; }

 private:
  ForecastSubsystem(std::unique_ptr<forecast::Forecaster> forecaster, const WorkloadBoard& board,
                    IslandSource islands, std::string managedRoot, unsigned hostCpus);
  void redefineAggregates();
  void recordHistory(int64_t nowNs);

  // Points of CPU history kept per workload.
  static constexpr size_t kHistoryPoints = 600;
  struct HistoryPoint {
    int64_t timestampNs = 0;
    double actual = 0;
    std::optional<double> p50, p95;
  };

  std::unique_ptr<forecast::Forecaster> forecaster_;
  const WorkloadBoard& board_;
  IslandSource islands_;
  std::string managedRoot_;
  unsigned hostCpus_;
  int64_t stepNs_;

  struct Defined {
    IslandAggregate aggregate;
    std::optional<uint32_t> id;  // the forecaster's island; none while it has no members
    std::string problem;
  };
  // Releases the aggregate's forecaster island and forgets its id.
  void releaseAggregate(Defined& defined);
  mutable std::mutex definedMutex_;
  std::vector<Defined> defined_;
  bool islandSlotsExhausted_ = false;

  mutable std::mutex historyMutex_;
  std::map<uint32_t, std::deque<HistoryPoint>> history_;
  // The short-term forecast of each workload's next sample, from the last tick.
  std::map<uint32_t, std::pair<double, double>> pending_;
  std::vector<forecast::ShortTermForecast> shortTerms_;  // recordHistory's, kept for its capacity
};

}  // namespace Atoll
