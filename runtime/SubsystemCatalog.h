#pragma once
// The subsystems atolld knows by name, with their default time budgets. The
// configuration accepts [subsystems.NAME] only for these names, so a typo is an
// error rather than a silently ignored table. Each subsystem that joins the
// daemon adds its entry here.
#include <array>
#include <chrono>
#include <string_view>

namespace Atoll {

struct SubsystemCatalogEntry {
  std::string_view name;
  std::chrono::milliseconds defaultBudget;
  std::string_view description;
};

inline constexpr std::array kSubsystemCatalog = {
    SubsystemCatalogEntry{"housekeeping", std::chrono::milliseconds(99),
                          "journal size accounting, snapshot and compaction"},
    SubsystemCatalogEntry{"self-metrics", std::chrono::milliseconds(20),
                          "the daemon's own CPU time, memory and threads from /proc/self/stat"},
    SubsystemCatalogEntry{"telemetry", std::chrono::milliseconds(40),
                          "per-workload CPU, run-queue, memory, PSI, disk and network (eBPF and "
                          "cgroupfs) into the forecaster's ring"},
    SubsystemCatalogEntry{"forecast", std::chrono::milliseconds(20),
                          "demand forecasts per workload, island and host"},
    SubsystemCatalogEntry{"islands", std::chrono::milliseconds(15),
                          "resource islands from configuration and desired state, held in "
                          "cgroup v2"},
    // A pass over a few islands costs microseconds (bench/RESULTS.md, Planner);
    // 4 ms keeps the default budgets within a 200 ms tick.
    SubsystemCatalogEntry{"planner", std::chrono::milliseconds(4),
                          "island resizes and VM moves decided from the forecasts; executed only "
                          "in enforce mode"},
    // Transfers run on threads of their own, never inside a tick; the
    // smallest budget the configuration accepts, taken from housekeeping so
    // the defaults still fit a 200 ms tick.
    SubsystemCatalogEntry{"transfer", std::chrono::milliseconds(1),
                          "image pre-copy to peers requested through the API, the receiving "
                          "endpoint when [transfer] listen is set, the host-wide bandwidth cap"},
};

}  // namespace Atoll
