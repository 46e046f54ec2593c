#pragma once
// For the daemon's planner tests: the clock they start from and the
// workloads they publish to the board.
#include <cstdint>
#include <string>

#include "bpf/collector/WorkloadRegistry.h"

namespace Atoll::test {

inline constexpr int64_t kStart = 1'700'000'000'000'000'000;
inline constexpr int64_t kSecond = 1'000'000'000;

inline telemetry::Workload workload(uint32_t number, const std::string& path,
                                    const std::string& name) {
  telemetry::Workload w;
  w.number = number;
  w.cgroup = {4000 + number, path, name, ""};
  return w;
}

}  // namespace Atoll::test
