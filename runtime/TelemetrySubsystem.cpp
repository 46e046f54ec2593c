#include "runtime/TelemetrySubsystem.h"

#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "numa/IslandEnforcer.h"

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
  options.libvirtTimeout = settings.libvirtTimeout;
  return options;
}

TelemetrySubsystem::TelemetrySubsystem(const TelemetrySettings& settings,
                                       forecast::SampleRing& ring, WorkloadBoard& board,
                                       prometheus::Registry& registry)
    : options_(collectorOptions(settings)),
      ring_(ring),
      board_(board),
      metrics_(registry),
      islands_(std::string(numa::kDefaultManagedRoot)) {
  tryStart();
}

void TelemetrySubsystem::followIslands() {
  auto mount = Dir::open(options_.cgroupMount);
  auto names = mount ? telemetry::listIslandCgroups(*mount, islands_.managedRoot())
                     : Result<std::vector<std::string>>(mount.error());
  std::string problem;
  if (!names) {
    problem = names.error().message();
  } else if (auto unnumbered = islands_.update(*names); !unnumbered.empty()) {
    problem = fmt::format("more than {} islands: no cross-island wait for {}",
                          telemetry::IslandNumbering::kMaxIslands, fmt::join(unnumbered, ","));
  }
  if (problem != islandProblem_ && !problem.empty())
    spdlog::warn("event=telemetry_islands_problem error=\"{}\"", problem);
  islandProblem_ = problem;
  if (!names || !collector_) return;
  const bool wanted = !islands_.empty();
  if (wanted != collector_->tracksIslands()) {
    if (auto switched = collector_->setTrackIslands(wanted); !switched) {
      if (islandProblem_.empty())
        spdlog::warn("event=telemetry_islands_problem error=\"{}\"", switched.error().message());
      islandProblem_ = switched.error().message();
      return;
    }
    spdlog::info("event=cross_island_wait state={} islands={}", wanted ? "on" : "off",
                 islands_.numbers().size());
    islandOfWorkload_.clear();
  }
  if (!wanted) return;
  for (const auto& [id, workload] : collector_->registry().active()) {
    const uint32_t island = islands_.islandOf(workload.cgroup.path);
    auto known = islandOfWorkload_.find(workload.number);
    if (known != islandOfWorkload_.end() && known->second == island) continue;
    if (auto set = collector_->setIsland(workload.number, island); !set) {
      spdlog::warn("event=telemetry_islands_problem workload={} error=\"{}\"", workload.number,
                   set.error().message());
      continue;
    }
    islandOfWorkload_[workload.number] = island;
  }
  std::erase_if(islandOfWorkload_, [&](const auto& entry) {
    for (const auto& [id, workload] : collector_->registry().active())
      if (workload.number == entry.first) return false;
    return true;
  });
}

void TelemetrySubsystem::tryStart() {
  // Islands present from the start: load the island clocks right away.
  if (auto mount = Dir::open(options_.cgroupMount)) {
    if (auto names = telemetry::listIslandCgroups(*mount, islands_.managedRoot()))
      options_.trackIslands = !names->empty();
  }
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
  if (ticks_ % kIslandScanEveryTicks == 1 || !report.born.empty()) followIslands();
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
              {"libvirt", collector_->libvirtState()},
              {"libvirt_problem", collector_->libvirtProblem()},
              {"workloads", known.size()},
              {"samples_pushed", report.samplesPushed},
              {"samples_dropped", report.samplesDropped},
              {"degraded", collector_->degraded()},
              {"cross_island_wait", collector_->tracksIslands()},
              {"islands", islands_.numbers()},
              {"problems", report.problems}};
  return ok();
}

nlohmann::json TelemetrySubsystem::describe() const {
  std::lock_guard lock(describeMutex_);
  return details_;
}

}  // namespace Atoll
