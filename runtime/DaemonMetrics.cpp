#include "runtime/DaemonMetrics.h"

#include <prometheus/exposer.h>

namespace Atoll {

DaemonMetrics::DaemonMetrics(const std::string& version)
    : registry_(std::make_shared<prometheus::Registry>()) {
  prometheus::BuildGauge()
      .Name("atoll_daemon_info")
      .Help("Constant 1, labelled with the atolld version")
      .Register(*registry_)
      .Add({{"version", version}})
      .Set(1);
  tickDuration_ = &prometheus::BuildHistogram()
                       .Name("atoll_daemon_tick_duration_seconds")
                       .Help("Wall time of one tick across all phases and subsystems")
                       .Register(*registry_)
                       .Add({}, prometheus::Histogram::BucketBoundaries{
                                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                    0.05, 0.1, 0.25, 0.5, 1.0});
  ticks_ = &prometheus::BuildCounter()
                .Name("atoll_daemon_ticks_total")
                .Help("Ticks run")
                .Register(*registry_)
                .Add({});
  ticksMissed_ = &prometheus::BuildCounter()
                      .Name("atoll_daemon_ticks_missed_total")
                      .Help("Ticks skipped because the previous one ran past its slot")
                      .Register(*registry_)
                      .Add({});
  phaseSeconds_ = &prometheus::BuildGauge()
                       .Name("atoll_subsystem_phase_seconds")
                       .Help("Wall time of a subsystem's phase in the last tick")
                       .Register(*registry_);
  overruns_ = &prometheus::BuildCounter()
                   .Name("atoll_subsystem_overruns_total")
                   .Help("Ticks in which a subsystem ran past its time budget")
                   .Register(*registry_);
  skips_ = &prometheus::BuildCounter()
                .Name("atoll_subsystem_skipped_ticks_total")
                .Help("Ticks a subsystem missed because an earlier overrun was still running")
                .Register(*registry_);
  failures_ = &prometheus::BuildCounter()
                   .Name("atoll_subsystem_phase_failures_total")
                   .Help("Phases that returned an error")
                   .Register(*registry_);
  apiRequests_ = &prometheus::BuildCounter()
                      .Name("atoll_api_requests_total")
                      .Help("Local API requests by method and status code")
                      .Register(*registry_);
  reloads_ = &prometheus::BuildCounter()
                  .Name("atoll_config_reloads_total")
                  .Help("SIGHUP configuration reloads by result")
                  .Register(*registry_);
}

DaemonMetrics::~DaemonMetrics() = default;

Result<void> DaemonMetrics::expose(const ListenAddress& address) {
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(address.toString(), 1);
  } catch (const std::exception& e) {
    return Error::invalid("listen", address.toString(), "", std::string("metrics: ") + e.what());
  }
  exposer_->RegisterCollectable(registry_);
  auto ports = exposer_->GetListeningPorts();
  if (!ports.empty()) port_ = static_cast<uint16_t>(ports.front());
  return ok();
}

void DaemonMetrics::recordTick(const TickReport& report) {
  ticks_->Increment();
  tickDuration_->Observe(static_cast<double>(report.duration.count()) / 1e6);
  for (const auto& subsystem : report.subsystems) {
    auto it = subsystemSeries_.find(subsystem.name);
    if (it == subsystemSeries_.end()) {
      SubsystemSeries series;
      series.overruns = &overruns_->Add({{"subsystem", subsystem.name}});
      series.skips = &skips_->Add({{"subsystem", subsystem.name}});
      it = subsystemSeries_.emplace(subsystem.name, std::move(series)).first;
    }
    SubsystemSeries& series = it->second;
    if (subsystem.overran) series.overruns->Increment();
    if (subsystem.skipped) series.skips->Increment();
    for (const auto& run : subsystem.phases) {
      auto& [seconds, failures] = series.phases[run.phase];
      if (seconds == nullptr) {
        prometheus::Labels labels{{"subsystem", subsystem.name},
                                  {"phase", std::string(phaseName(run.phase))}};
        seconds = &phaseSeconds_->Add(labels);
        failures = &failures_->Add(labels);
      }
      seconds->Set(static_cast<double>(run.elapsed.count()) / 1e6);
      if (!run.error.empty()) failures->Increment();
    }
  }
}

void DaemonMetrics::recordMissedTicks(uint64_t missed) {
  ticksMissed_->Increment(static_cast<double>(missed));
}

void DaemonMetrics::recordApiRequest(const std::string& method, int status) {
  // Methods outside HTTP's small set are folded into "other" so a client
  // cannot grow the label space without bound.
  static const char* known[] = {"GET", "PUT", "DELETE", "POST", "HEAD", "PATCH", "OPTIONS"};
  std::string label = "other";
  for (const char* m : known)
    if (method == m) label = m;
  std::lock_guard lock(apiMutex_);
  auto key = std::make_pair(label, status);
  auto it = apiCounters_.find(key);
  if (it == apiCounters_.end()) {
    auto& counter = apiRequests_->Add({{"method", label}, {"code", std::to_string(status)}});
    it = apiCounters_.emplace(key, &counter).first;
  }
  it->second->Increment();
}

void DaemonMetrics::recordReload(bool accepted) {
  reloads_->Add({{"result", accepted ? "accepted" : "rejected"}}).Increment();
}

}  // namespace Atoll
