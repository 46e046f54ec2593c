#pragma once
// Which telemetry signals work on the running kernel, and why not where they
// do not: the same loaders the collector uses are started (and stopped at
// once), and the cgroup2 hierarchy's controllers and PSI are looked at. Used
// by `atoll check`; the collector's own degraded() says the same at run time.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace Atoll::telemetry {

struct SignalStatus {
  std::string signal;  // what the operator sees, e.g. "run-queue latency"
  std::string source;  // program type and attach point, or control file
  bool available = false;
  std::string reason;  // why not, when unavailable
};

// Loads BPF programs: needs root; without it every BPF signal reports the
// permission error.
std::vector<SignalStatus> probeTelemetrySignals(const std::string& cgroupMount);

// One line per signal: "ok      <signal> (<source>)" or
// "missing <signal> (<source>): <reason>".
std::string renderSignals(const std::vector<SignalStatus>& signals);
nlohmann::json signalsJson(const std::vector<SignalStatus>& signals);

}  // namespace Atoll::telemetry
