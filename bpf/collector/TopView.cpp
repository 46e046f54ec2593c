#include "bpf/collector/TopView.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>

namespace Atoll::telemetry {

namespace {

struct SortName {
  const char* name;
  TopSort sort;
};
constexpr SortName kSorts[] = {{"cpu", TopSort::Cpu},       {"runq", TopSort::RunQueue},
                               {"memory", TopSort::Memory}, {"disk", TopSort::Disk},
                               {"net", TopSort::Network},   {"name", TopSort::Name}};

std::optional<double> sum(const std::optional<double>& a, const std::optional<double>& b) {
  if (!a || !b) return std::nullopt;
  return *a + *b;
}

std::optional<double> sortValue(const WorkloadSnapshot& row, TopSort sort) {
  switch (sort) {
    case TopSort::Cpu:
      return row.cpuCores ? row.cpuCores : row.cgroupCpuCores;
    case TopSort::RunQueue:
      return row.runqP99Us;
    case TopSort::Memory:
      if (row.memoryBytes) return static_cast<double>(*row.memoryBytes);
      return std::nullopt;
    case TopSort::Disk:
      return sum(row.diskReadBytesPerSecond, row.diskWriteBytesPerSecond);
    case TopSort::Network:
      return sum(row.rxBytesPerSecond, row.txBytesPerSecond);
    case TopSort::Name:
      return std::nullopt;
  }
  return std::nullopt;
}

template <typename T>
nlohmann::json orNull(const std::optional<T>& value) {
  return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
}

std::string cell(const std::optional<double>& value, const char* format) {
  return value ? fmt::format(fmt::runtime(format), *value) : std::string("-");
}

std::string bytes(std::optional<double> value) {
  if (!value) return "-";
  const char* units[] = {"B", "K", "M", "G", "T"};
  int unit = 0;
  double v = *value;
  while (v >= 1024 && unit < 4) {
    v /= 1024;
    ++unit;
  }
  return fmt::format("{:.1f}{}", v, units[unit]);
}

}  // namespace

bool parseTopSort(const std::string& text, TopSort& out) {
  for (const SortName& s : kSorts) {
    if (text == s.name) {
      out = s.sort;
      return true;
    }
  }
  return false;
}

const std::vector<std::string>& topSortNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const SortName& s : kSorts) out.push_back(s.name);
    return out;
  }();
  return names;
}

void sortSnapshots(std::vector<WorkloadSnapshot>& rows, TopSort sort) {
  std::stable_sort(rows.begin(), rows.end(), [sort](const auto& a, const auto& b) {
    if (sort == TopSort::Name) return a.workload.cgroup.name < b.workload.cgroup.name;
    auto va = sortValue(a, sort);
    auto vb = sortValue(b, sort);
    if (va && vb) return *va > *vb;
    return va.has_value() && !vb.has_value();
  });
}

nlohmann::json snapshotJson(const WorkloadSnapshot& row) {
  nlohmann::json j;
  j["workload"] = row.workload.number;
  j["name"] = row.workload.cgroup.name;
  j["uuid"] = row.workload.cgroup.uuid.empty() ? nlohmann::json(nullptr)
                                               : nlohmann::json(row.workload.cgroup.uuid);
  j["cgroup"] = row.workload.cgroup.path;
  j["cgroup_id"] = row.workload.cgroup.cgroupId;
  j["interval_seconds"] = row.intervalSeconds;
  j["cpu_cores"] = orNull(row.cpuCores);
  j["cpu_stat_cores"] = orNull(row.cgroupCpuCores);
  j["runq_p50_us"] = orNull(row.runqP50Us);
  j["runq_p99_us"] = orNull(row.runqP99Us);
  j["runq_wait_per_second"] = orNull(row.runqWaitPerSecond);
  j["switches_per_second"] = orNull(row.switchesPerSecond);
  j["memory_bytes"] = orNull(row.memoryBytes);
  j["cpu_pressure_some_avg10"] = orNull(row.cpuPressureSome10);
  j["memory_pressure_some_avg10"] = orNull(row.memoryPressureSome10);
  j["io_pressure_some_avg10"] = orNull(row.ioPressureSome10);
  j["disk_read_bytes_per_second"] = orNull(row.diskReadBytesPerSecond);
  j["disk_write_bytes_per_second"] = orNull(row.diskWriteBytesPerSecond);
  j["disk_p99_us"] = orNull(row.diskP99Us);
  j["net_rx_bytes_per_second"] = orNull(row.rxBytesPerSecond);
  j["net_tx_bytes_per_second"] = orNull(row.txBytesPerSecond);
  j["page_faults_per_second"] = orNull(row.pageFaultsPerSecond);
  j["major_page_faults_per_second"] = orNull(row.majorPageFaultsPerSecond);
  j["cross_island_wait_per_second"] = orNull(row.crossIslandWaitPerSecond);
  j["talks_to"] = nlohmann::json::array();
  for (const WorkloadTraffic& peer : row.talksTo)
    j["talks_to"].push_back({{"workload", peer.workload},
                             {"name", peer.name},
                             {"tx_bytes", peer.txBytes},
                             {"rx_bytes", peer.rxBytes}});
  return j;
}

nlohmann::json tickJson(const TickReport& report, const std::vector<std::string>& degraded) {
  nlohmann::json j;
  j["timestamp_ns"] = report.timestampNs;
  j["workloads"] = nlohmann::json::array();
  for (const WorkloadSnapshot& row : report.workloads) j["workloads"].push_back(snapshotJson(row));
  j["degraded"] = degraded;
  j["problems"] = report.problems;
  j["lost_events"] = {{"sched_map_full", report.schedErrors.mapFull},
                      {"sched_task_storage", report.schedErrors.taskStorage},
                      {"net_map_full", report.netErrors.mapFull},
                      {"net_flow_map_full", report.netErrors.flowMapFull},
                      {"block_map_full", report.blockErrors.mapFull},
                      {"block_inflight_full", report.blockErrors.inflightFull}};
  return j;
}

std::string renderTable(const std::vector<WorkloadSnapshot>& rows) {
  std::string out = fmt::format(
      "{:<28} {:>6} {:>9} {:>9} {:>8} {:>6} {:>6} {:>6} {:>9} {:>9} {:>9} {:>9} {:>8}\n",
      "WORKLOAD", "CPU%", "RQ p50us", "RQ p99us", "MEM", "PSIcpu", "PSImem", "PSIio", "DISK rd/s",
      "DISK wr/s", "NET rx/s", "NET tx/s", "FLT/s");
  for (const WorkloadSnapshot& row : rows) {
    std::string name = row.workload.cgroup.name;
    if (name.size() > 28) name = "…" + name.substr(name.size() - 26);
    auto cpu = row.cpuCores ? row.cpuCores : row.cgroupCpuCores;
    std::optional<double> cpuPercent;
    if (cpu) cpuPercent = *cpu * 100;
    std::optional<double> memory;
    if (row.memoryBytes) memory = static_cast<double>(*row.memoryBytes);
    out += fmt::format(
        "{:<28} {:>6} {:>9} {:>9} {:>8} {:>6} {:>6} {:>6} {:>9} {:>9} {:>9} {:>9} {:>8}\n", name,
        cell(cpuPercent, "{:.1f}"), cell(row.runqP50Us, "{:.0f}"), cell(row.runqP99Us, "{:.0f}"),
        bytes(memory), cell(row.cpuPressureSome10, "{:.2f}"),
        cell(row.memoryPressureSome10, "{:.2f}"), cell(row.ioPressureSome10, "{:.2f}"),
        bytes(row.diskReadBytesPerSecond), bytes(row.diskWriteBytesPerSecond),
        bytes(row.rxBytesPerSecond), bytes(row.txBytesPerSecond),
        cell(row.pageFaultsPerSecond, "{:.0f}"));
  }
  return out;
}

}  // namespace Atoll::telemetry
