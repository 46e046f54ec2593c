#include "runtime/VmMetrics.h"

namespace Atoll {

namespace {

using Snapshot = telemetry::WorkloadSnapshot;

std::optional<double> micros(const std::optional<double>& us) {
  if (!us) return std::nullopt;
  return *us / 1e6;
}

}  // namespace

VmMetrics::VmMetrics(prometheus::Registry& registry) {
  auto& cpu = prometheus::BuildGauge()
                  .Name("atoll_vm_cpu_cores")
                  .Help("CPU used by the workload, in cores (on-CPU time per second)")
                  .Register(registry);
  auto& wait = prometheus::BuildGauge()
                   .Name("atoll_vm_runqueue_wait_seconds_per_second")
                   .Help("Seconds the workload's threads waited runnable, per second")
                   .Register(registry);
  auto& p99 = prometheus::BuildGauge()
                  .Name("atoll_vm_runqueue_latency_p99_seconds")
                  .Help("99th percentile of run-queue latency over the last interval")
                  .Register(registry);
  auto& memory = prometheus::BuildGauge()
                     .Name("atoll_vm_memory_bytes")
                     .Help("memory.current of the workload's cgroup")
                     .Register(registry);
  auto& pressure = prometheus::BuildGauge()
                       .Name("atoll_vm_pressure_some_avg10")
                       .Help("PSI 'some' avg10 of the workload's cgroup, percent")
                       .Register(registry);
  auto& disk = prometheus::BuildGauge()
                   .Name("atoll_vm_disk_bytes_per_second")
                   .Help("Block I/O bytes per second issued by the workload")
                   .Register(registry);
  auto& net = prometheus::BuildGauge()
                  .Name("atoll_vm_network_bytes_per_second")
                  .Help("Network bytes per second of the workload's sockets")
                  .Register(registry);
  signals_ = {
      {&cpu, {}, [](const Snapshot& s) { return s.cpuCores ? s.cpuCores : s.cgroupCpuCores; }},
      {&wait, {}, [](const Snapshot& s) { return s.runqWaitPerSecond; }},
      {&p99, {}, [](const Snapshot& s) { return micros(s.runqP99Us); }},
      {&memory,
       {},
       [](const Snapshot& s) -> std::optional<double> {
         if (!s.memoryBytes) return std::nullopt;
         return static_cast<double>(*s.memoryBytes);
       }},
      {&pressure, {{"resource", "cpu"}}, [](const Snapshot& s) { return s.cpuPressureSome10; }},
      {&pressure,
       {{"resource", "memory"}},
       [](const Snapshot& s) { return s.memoryPressureSome10; }},
      {&pressure, {{"resource", "io"}}, [](const Snapshot& s) { return s.ioPressureSome10; }},
      {&disk, {{"direction", "read"}}, [](const Snapshot& s) { return s.diskReadBytesPerSecond; }},
      {&disk,
       {{"direction", "write"}},
       [](const Snapshot& s) { return s.diskWriteBytesPerSecond; }},
      {&net, {{"direction", "rx"}}, [](const Snapshot& s) { return s.rxBytesPerSecond; }},
      {&net, {{"direction", "tx"}}, [](const Snapshot& s) { return s.txBytesPerSecond; }},
  };
}

void VmMetrics::set(uint32_t workload, const std::map<std::string, std::string>& labels,
                    size_t signal, std::optional<double> value) {
  auto& mine = gauges_[workload];
  auto it = mine.find(signal);
  if (!value) {
    if (it != mine.end()) {
      signals_[signal].family->Remove(it->second);
      mine.erase(it);
    }
    return;
  }
  if (it == mine.end()) {
    auto all = labels;
    all.insert(signals_[signal].extraLabels.begin(), signals_[signal].extraLabels.end());
    it = mine.emplace(signal, &signals_[signal].family->Add(all)).first;
  }
  it->second->Set(*value);
}

void VmMetrics::forget(uint32_t workload) {
  auto it = gauges_.find(workload);
  if (it == gauges_.end()) return;
  for (auto& [signal, gauge] : it->second) signals_[signal].family->Remove(gauge);
  gauges_.erase(it);
}

void VmMetrics::update(const telemetry::TickReport& report) {
  for (const auto& ended : report.ended) forget(ended.number);
  for (const Snapshot& s : report.workloads) {
    const std::map<std::string, std::string> labels = {
        {"vm", s.workload.cgroup.name},
        {"uuid", s.workload.cgroup.uuid},
        {"workload", std::to_string(s.workload.number)}};
    for (size_t i = 0; i < signals_.size(); ++i)
      set(s.workload.number, labels, i, signals_[i].read(s));
  }
}

size_t VmMetrics::seriesCount() const {
  size_t n = 0;
  for (const auto& [workload, gauges] : gauges_) n += gauges.size();
  return n;
}

}  // namespace Atoll
