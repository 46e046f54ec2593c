#pragma once
// The per-workload table `atoll top` shows, and its JSON form: sorting and
// rendering of collector snapshots, kept apart from the collector's I/O.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bpf/collector/Collector.h"

namespace Atoll::telemetry {

enum class TopSort { Cpu, RunQueue, Memory, Disk, Network, Name };

// "cpu", "runq", "memory", "disk", "net", "name"; false for anything else.
bool parseTopSort(const std::string& text, TopSort& out);
const std::vector<std::string>& topSortNames();

// Largest first (names ascending); a missing value sorts last.
void sortSnapshots(std::vector<WorkloadSnapshot>& rows, TopSort sort);
// Missing values are JSON null, never 0.
nlohmann::json snapshotJson(const WorkloadSnapshot& row);
nlohmann::json tickJson(const TickReport& report, const std::vector<std::string>& degraded);
// Fixed-width text table; "-" for a missing value.
std::string renderTable(const std::vector<WorkloadSnapshot>& rows);

}  // namespace Atoll::telemetry
