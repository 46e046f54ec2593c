#pragma once
// The latest telemetry as the API and the forecast subsystem read it: the
// collector's last report in the shape `atoll top --json` prints, the
// workloads known now (also those still waiting for their first full
// interval), and the signals that are off. The telemetry subsystem writes it
// once per tick; any thread reads it.
#include <cstdint>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "bpf/collector/Collector.h"
#include "util/Result.h"

namespace Atoll {

class WorkloadBoard {
 public:
  void publish(const telemetry::TickReport& report, std::vector<telemetry::Workload> known,
               const std::vector<std::string>& degraded);
  // Telemetry is not running; `reason` says why.
  void markUnavailable(std::string reason);

  // The last report as JSON (timestamp_ns, workloads, degraded, problems,
  // lost_events); nullopt before the first one, with unavailableReason() set
  // when telemetry could not start.
  std::optional<nlohmann::json> latest() const;
  std::string unavailableReason() const;

  std::vector<telemetry::Workload> workloads() const;
  // CPU cores of each workload in the last report (from BPF when loaded,
  // else from cpu.stat), by workload number.
  std::map<uint32_t, double> latestCpuCores() const;
  // By workload number, libvirt name or UUID, cgroup path (relative to the
  // cgroup2 mount), or the path's last component ("demo-vm" for
  // machine.slice/demo-vm). A name or last component shared by several
  // workloads is an error that lists them.
  Result<telemetry::Workload> find(const std::string& nameOrId) const;
  // Changes whenever the set of known workloads changes.
  uint64_t generation() const;

 private:
  mutable std::mutex mutex_;
  std::optional<nlohmann::json> latest_;
  std::vector<telemetry::Workload> known_;
  std::map<uint32_t, double> cpuCores_;
  std::string unavailable_;
  uint64_t generation_ = 0;
};

}  // namespace Atoll
