#pragma once
// The telemetry subsystem (collect phase): owns the collector configured from
// [telemetry], which pushes every workload's samples into the forecaster's
// ring; publishes each tick's snapshot on the WorkloadBoard (GET
// /v1/workloads, `atoll top`) and as per-VM Prometheus series. Signals that
// are off (no BPF, no libvirt, a missing cgroup file) are logged once and
// listed in `atoll status`; a collector that cannot start at all is retried.
// While islands exist (child cgroups of the managed root, atoll.slice/<name>)
// the cross-island wait is on and each workload is assigned the island whose
// cgroup holds its own; with no islands it is off, sparing every context
// switch the island clocks.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bpf/collector/Collector.h"
#include "bpf/collector/IslandNumbering.h"
#include "forecast/SampleRing.h"
#include "runtime/Config.h"
#include "runtime/Subsystem.h"
#include "runtime/VmMetrics.h"
#include "runtime/WorkloadBoard.h"

namespace Atoll {

// The collector's options for these settings (the cgroup2 mount detected
// when not configured).
telemetry::CollectorOptions collectorOptions(const TelemetrySettings& settings);

class TelemetrySubsystem final : public Subsystem {
 public:
  // Ticks between attempts to start a collector that failed to start.
  static constexpr uint64_t kRetryEveryTicks = 30;
  // Ticks between looks for islands come and gone (also on any workload born).
  static constexpr uint64_t kIslandScanEveryTicks = 10;

  TelemetrySubsystem(const TelemetrySettings& settings, forecast::SampleRing& ring,
                     WorkloadBoard& board, prometheus::Registry& registry);

  std::string_view name() const override { return "telemetry"; }
  bool runsIn(Phase phase) const override { return phase == Phase::Collect; }
  Result<void> runPhase(Phase phase, const TickContext& context) override;
  nlohmann::json describe() const override;

 private:
  void tryStart();
  // Lists the islands, turns the cross-island wait on or off to match and
  // assigns workloads to islands; problems are logged once each.
  void followIslands();

  telemetry::CollectorOptions options_;
  forecast::SampleRing& ring_;
  WorkloadBoard& board_;
  VmMetrics metrics_;
  std::unique_ptr<telemetry::Collector> collector_;
  std::string startError_;
  telemetry::IslandNumbering islands_;
  std::map<uint32_t, uint32_t> islandOfWorkload_;  // as last set in the collector
  std::string islandProblem_;
  uint64_t ticks_ = 0;

  mutable std::mutex describeMutex_;
  nlohmann::json details_ = nlohmann::json::object();
};

}  // namespace Atoll
