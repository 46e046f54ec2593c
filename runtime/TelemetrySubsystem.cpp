#include "runtime/TelemetrySubsystem.h"

#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

namespace Atoll {

telemetry::CollectorOptions collectorOptions(const TelemetrySettings& settings) {
  telemetry::CollectorOptions options;
  options.cgroupMount =
      settings.cgroupMount.empty() ? telemetry::defaultCgroup2Mount() : settings.cgroupMount;
  options.selectors = settings.selectors;
  options.libvirtUri = settings.libvirtUri;
  options.schedProbe = settings.schedProbe;
  options.netProbe = settings.netProbe;
  options.blockProbe = settings.blockProbe;
  options.discoverEveryTicks = settings.discoverEveryTicks;
  return options;
}

TelemetrySubsystem::TelemetrySubsystem(const TelemetrySettings& settings,
                                       forecast::SampleRing& ring, WorkloadBoard& board,
                                       prometheus::Registry& registry)
    : options_(collectorOptions(settings)), ring_(ring), board_(board), metrics_(registry) {
  tryStart();
}

void TelemetrySubsystem::tryStart() {
  auto collector = telemetry::Collector::start(options_, &ring_);
  if (!collector) {
    std::string error = collector.error().message();
    if (error != startError_)
      spdlog::error(
          "event=telemetry_unavailable error=\"{}\" effect=\"no workload telemetry; retried every "
          "{} ticks\"",
          error, kRetryEveryTicks);
    startError_ = error;
    board_.markUnavailable(startError_);
    return;
  }
  collector_ = std::move(*collector);
  startError_.clear();
  spdlog::info(
      "event=telemetry_started cgroup_mount={} selectors=\"{}\" libvirt_uri=\"{}\" "
      "degraded_signals={}",
      options_.cgroupMount, fmt::join(options_.selectors, ","), options_.libvirtUri,
      collector_->degraded().size());
}

Result<void> TelemetrySubsystem::runPhase(Phase, const TickContext&) {
  ++ticks_;
  if (!collector_) {
    if (ticks_ % kRetryEveryTicks == 0) tryStart();
    if (!collector_) {
      std::lock_guard lock(describeMutex_);
      details_ = {{"running", false}, {"error", startError_}};
      return Error::invalid("start collector", options_.cgroupMount, "", startError_);
    }
  }
  telemetry::TickReport report = collector_->tick();
  std::vector<telemetry::Workload> known;
  for (const auto& [id, workload] : collector_->registry().active()) known.push_back(workload);
  for (const auto& w : report.born)
    spdlog::info("event=workload_born workload={} name=\"{}\" cgroup={}", w.number, w.cgroup.name,
                 w.cgroup.path);
  for (const auto& w : report.ended)
    spdlog::info("event=workload_ended workload={} name=\"{}\" cgroup={}", w.number, w.cgroup.name,
                 w.cgroup.path);
  board_.publish(report, known, collector_->degraded());
  metrics_.update(report);
  std::lock_guard lock(describeMutex_);
  details_ = {{"running", true},
              {"cgroup_mount", options_.cgroupMount},
              {"selectors", options_.selectors},
              {"libvirt_uri", options_.libvirtUri},
              {"workloads", known.size()},
              {"samples_pushed", report.samplesPushed},
              {"samples_dropped", report.samplesDropped},
              {"degraded", collector_->degraded()},
              {"problems", report.problems}};
  return ok();
}

nlohmann::json TelemetrySubsystem::describe() const {
  std::lock_guard lock(describeMutex_);
  return details_;
}

}  // namespace Atoll
