#pragma once
// The telemetry subsystem (collect phase): owns the collector configured from
// [telemetry], which pushes every workload's samples into the forecaster's
// ring; publishes each tick's snapshot on the WorkloadBoard (GET
// /v1/workloads, `atoll top`) and as per-VM Prometheus series. Signals that
// are off (no BPF, no libvirt, a missing cgroup file) are logged once and
// listed in `atoll status`; a collector that cannot start at all is retried.
#include <memory>
#include <string>
#include <vector>

#include "bpf/collector/Collector.h"
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

  TelemetrySubsystem(const TelemetrySettings& settings, forecast::SampleRing& ring,
                     WorkloadBoard& board, prometheus::Registry& registry);

  std::string_view name() const override { return "telemetry"; }
  bool runsIn(Phase phase) const override { return phase == Phase::Collect; }
  Result<void> runPhase(Phase phase, const TickContext& context) override;
  nlohmann::json describe() const override;

 private:
  void tryStart();

  telemetry::CollectorOptions options_;
  forecast::SampleRing& ring_;
  WorkloadBoard& board_;
  VmMetrics metrics_;
  std::unique_ptr<telemetry::Collector> collector_;
  std::string startError_;
  uint64_t ticks_ = 0;

  mutable std::mutex describeMutex_;
  nlohmann::json details_ = nlohmann::json::object();
};

}  // namespace Atoll
