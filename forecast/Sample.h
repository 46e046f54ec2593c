#pragma once
// One telemetry sample as it travels from a producer (eBPF reader, cgroup
// poller) to the forecaster thread. Plain data, so it can sit in a ring cell.
#include <cstdint>

namespace Atoll::forecast {

// The resource a series measures; the order is the order of VmPressure drivers.
enum class Metric : uint8_t { Cpu = 0, Memory = 1, Io = 2, Network = 3 };
inline constexpr int kMetricCount = 4;

const char* metricName(Metric metric);

// A series is one metric of one workload (VM, or an island's aggregate).
struct SeriesKey {
  uint32_t workload = 0;
  Metric metric = Metric::Cpu;

  // Never 0, so 0 can mark an empty slot in lock-free tables.
  uint64_t packed() const { return (uint64_t{workload} << 8 | static_cast<uint64_t>(metric)) + 1; }
  friend bool operator==(const SeriesKey&, const SeriesKey&) = default;
};

struct Sample {
  SeriesKey key;
  int64_t timestampNs = 0;
  double value = 0;
};

}  // namespace Atoll::forecast
