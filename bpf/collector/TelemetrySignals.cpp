#include "bpf/collector/TelemetrySignals.h"

#include <fmt/format.h>
#include <unistd.h>

#include "bpf/loaders/BlockTelemetry.h"
#include "bpf/loaders/NetTelemetry.h"
#include "bpf/loaders/SchedTelemetry.h"
#include "util/Fs.h"

namespace Atoll::telemetry {

namespace {

constexpr const char* kPressureDir = "/proc/pressure";

SignalStatus status(std::string signal, std::string source, const std::string& failure) {
  return {std::move(signal), std::move(source), failure.empty(), failure};
}

// Whether the hierarchy at `mount` offers `controller` to its children.
bool hasController(const std::string& mount, std::string_view controller) {
  auto dir = Dir::open(mount);
  if (!dir) return false;
  auto text = dir->readFile("cgroup.controllers");
  if (!text) return false;
  std::string_view rest = *text;
  while (!rest.empty()) {
    size_t start = rest.find_first_not_of(" \n");
    if (start == std::string_view::npos) break;
    rest.remove_prefix(start);
    size_t end = rest.find_first_of(" \n");
    if (rest.substr(0, end) == controller) return true;
    if (end == std::string_view::npos) break;
    rest.remove_prefix(end);
  }
  return false;
}

}  // namespace

std::vector<SignalStatus> probeTelemetrySignals(const std::string& cgroupMount) {
  std::vector<SignalStatus> out;
  // Each loader is started and dropped before the next: at most one set of
  // programs is attached at a time.
  const char* schedSource = "tp_btf/sched_switch, task sched_info";
  SchedTelemetryOptions schedOptions;
  schedOptions.maxCgroups = 16;
  std::string schedFailure, faults;
  if (auto sched = SchedTelemetry::start(schedOptions)) {
    faults = (*sched)->pageFaultsUnavailable();
  } else {
    schedFailure = faults = sched.error().message();
  }
  out.push_back(status("cpu time and context switches", schedSource, schedFailure));
  out.push_back(status("run-queue latency", schedSource, schedFailure));
  if (!faults.empty())
    faults += hasController(cgroupMount, "memory")
                  ? "; memory.stat pgfault/pgmajfault deltas used instead"
                  : "; no memory controller for the memory.stat fallback either";
  out.push_back(status("user page faults", "tp_btf/page_fault_user", faults));
  schedOptions.trackIslands = true;
  {
    auto islands = SchedTelemetry::start(schedOptions);
    out.push_back(status("cross-island wait",
                         "tp_btf/sched_switch, sched_wakeup, sched_wakeup_new, sched_migrate_task",
                         islands ? "" : islands.error().message()));
  }
  {
    NetTelemetryOptions netOptions;
    netOptions.cgroupPath = cgroupMount;
    netOptions.maxCgroups = 16;
    netOptions.maxFlows = 16;
    auto net = NetTelemetry::start(netOptions);
    const std::string netFailure = net ? "" : net.error().message();
    out.push_back(
        status("network bytes and packets", "cgroup_skb/ingress, cgroup_skb/egress", netFailure));
    out.push_back(status("traffic matrix (peer addresses)", "cgroup_skb/ingress, cgroup_skb/egress",
                         netFailure));
  }
  {
    BlockTelemetryOptions blockOptions;
    blockOptions.maxCgroups = 16;
    auto block = BlockTelemetry::start(blockOptions);
    out.push_back(
        status("block I/O bytes, operations and latency",
               "tp_btf/block_io_start, tp_btf/block_bio_backmerge, tp_btf/block_bio_frontmerge, "
               "tp_btf/block_rq_complete",
               block ? "" : block.error().message()));
  }

  const bool memory = hasController(cgroupMount, "memory");
  const std::string noMemory =
      "the memory controller is not enabled on the cgroup2 hierarchy at " + cgroupMount;
  out.push_back(status("resident memory", "memory.current", memory ? "" : noMemory));
  out.push_back(
      status("memory statistics and major faults", "memory.stat", memory ? "" : noMemory));
  out.push_back(status(
      "pressure stall information", "cpu.pressure, memory.pressure, io.pressure",
      ::access(kPressureDir, R_OK) == 0
          ? ""
          : std::string("kernel without PSI (CONFIG_PSI, or psi=0 on the command line): no ") +
                kPressureDir));
  out.push_back(status("cgroup cpu usage cross-check", "cpu.stat",
                       ::access((cgroupMount + "/cgroup.procs").c_str(), F_OK) == 0
                           ? ""
                           : "no cgroup2 hierarchy at " + cgroupMount));
  return out;
}

std::string renderSignals(const std::vector<SignalStatus>& signals) {
  std::string out = "Telemetry signals:\n";
  for (const SignalStatus& s : signals) {
    if (s.available) {
      out += fmt::format("  ok      {} ({})\n", s.signal, s.source);
    } else {
      out += fmt::format("  missing {} ({}): {}\n", s.signal, s.source, s.reason);
    }
  }
  return out;
}

nlohmann::json signalsJson(const std::vector<SignalStatus>& signals) {
  nlohmann::json out = nlohmann::json::array();
  for (const SignalStatus& s : signals) {
    out.push_back({{"signal", s.signal},
                   {"source", s.source},
                   {"available", s.available},
                   {"reason", s.available ? nlohmann::json(nullptr) : nlohmann::json(s.reason)}});
  }
  return out;
}

}  // namespace Atoll::telemetry
