#include "runtime/WorkloadBoard.h"

#include <algorithm>
#include <charconv>
#include <string_view>

#include "bpf/collector/TopView.h"

namespace Atoll {

namespace {

bool sameWorkloads(const std::vector<telemetry::Workload>& a,
                   const std::vector<telemetry::Workload>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const auto& x, const auto& y) {
    return x.number == y.number && x.cgroup.name == y.cgroup.name &&
           x.cgroup.path == y.cgroup.path && x.cgroup.uuid == y.cgroup.uuid;
  });
}

}  // namespace

void WorkloadBoard::publish(const telemetry::TickReport& report,
                            std::vector<telemetry::Workload> known,
                            const std::vector<std::string>& degraded) {
  std::sort(known.begin(), known.end(),
            [](const auto& a, const auto& b) { return a.number < b.number; });
  nlohmann::json json = telemetry::tickJson(report, degraded);
  std::map<uint32_t, double> cpu;
  for (const auto& row : report.workloads) {
    if (auto cores = row.cpuCores ? row.cpuCores : row.cgroupCpuCores)
      cpu[row.workload.number] = *cores;
  }
  std::lock_guard lock(mutex_);
  latest_ = std::move(json);
  cpuCores_ = std::move(cpu);
  unavailable_.clear();
  if (!sameWorkloads(known, known_)) {
    known_ = std::move(known);
    ++generation_;
  }
}

void WorkloadBoard::markUnavailable(std::string reason) {
  std::lock_guard lock(mutex_);
  unavailable_ = std::move(reason);
}

std::optional<nlohmann::json> WorkloadBoard::latest() const {
  std::lock_guard lock(mutex_);
  return latest_;
}

std::string WorkloadBoard::unavailableReason() const {
  std::lock_guard lock(mutex_);
  return unavailable_;
}

std::vector<telemetry::Workload> WorkloadBoard::workloads() const {
  std::lock_guard lock(mutex_);
  return known_;
}

namespace {

// The part after the last '/': how a workload found through a cgroup
// selector ("machine.slice/demo-vm") is usually called ("demo-vm").
std::string_view lastPathComponent(std::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// One match is the answer; several are an error that lists them so the
// caller can repeat the request with an unambiguous key.
Result<telemetry::Workload> onlyMatch(const std::string& key, const char* kind,
                                      const std::vector<telemetry::Workload>& matches) {
  if (matches.size() == 1) return matches.front();
  std::string candidates;
  for (const auto& w : matches) {
    if (!candidates.empty()) candidates += ", ";
    candidates += w.cgroup.path + " (workload " + std::to_string(w.number) + ")";
  }
  return Error::invalid("workload '" + key + "' is ambiguous", {}, {},
                        std::string("the ") + kind + " matches " + candidates +
                            "; give the cgroup path or the workload number");
}

}  // namespace

Result<telemetry::Workload> WorkloadBoard::find(const std::string& nameOrId) const {
  std::lock_guard lock(mutex_);
  uint32_t number = 0;
  const char* end = nameOrId.data() + nameOrId.size();
  if (!nameOrId.empty() && std::from_chars(nameOrId.data(), end, number).ptr == end) {
    for (const auto& w : known_)
      if (w.number == number) return w;
  }
  for (const auto& w : known_)
    if (!w.cgroup.uuid.empty() && w.cgroup.uuid == nameOrId) return w;
  for (const auto& w : known_)
    if (w.cgroup.path == nameOrId) return w;
  std::vector<telemetry::Workload> byName;
  for (const auto& w : known_)
    if (w.cgroup.name == nameOrId) byName.push_back(w);
  if (!byName.empty()) return onlyMatch(nameOrId, "name", byName);
  std::vector<telemetry::Workload> byLastComponent;
  if (!nameOrId.empty() && nameOrId.find('/') == std::string::npos) {
    for (const auto& w : known_)
      if (lastPathComponent(w.cgroup.path) == nameOrId) byLastComponent.push_back(w);
  }
  if (!byLastComponent.empty()) return onlyMatch(nameOrId, "cgroup name", byLastComponent);
  return Error::invalid("no workload '" + nameOrId + "'", {}, {},
                        "give a VM name, UUID, workload number, cgroup path or its last "
                        "component that telemetry sees now (see GET /v1/workloads)");
}

std::map<uint32_t, double> WorkloadBoard::latestCpuCores() const {
  std::lock_guard lock(mutex_);
  return cpuCores_;
}

uint64_t WorkloadBoard::generation() const {
  std::lock_guard lock(mutex_);
  return generation_;
}

}  // namespace Atoll
