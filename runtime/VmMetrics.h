#pragma once
// Per-workload Prometheus series, labelled by VM name, UUID and workload
// number: CPU cores, run-queue wait and p99, memory, pressure (PSI), disk
// and network byte rates. A value the collector could not read has no
// series (never a 0); a vanished workload's series are removed.
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "bpf/collector/Collector.h"

namespace Atoll {

class VmMetrics {
 public:
  explicit VmMetrics(prometheus::Registry& registry);

  // One collector tick: sets the series of the reported workloads and
  // removes those of ended ones.
  void update(const telemetry::TickReport& report);
  // Series currently exported (for tests and status).
  size_t seriesCount() const;

 private:
  struct Signal {
    prometheus::Family<prometheus::Gauge>* family;
    std::map<std::string, std::string> extraLabels;
    std::optional<double> (*read)(const telemetry::WorkloadSnapshot&);
  };
  void set(uint32_t workload, const std::map<std::string, std::string>& labels, size_t signal,
           std::optional<double> value);
  void forget(uint32_t workload);

  std::vector<Signal> signals_;
  // workload number -> signal index -> its gauge
  std::map<uint32_t, std::map<size_t, prometheus::Gauge*>> gauges_;
};

}  // namespace Atoll
