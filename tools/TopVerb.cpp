// atoll top: a live per-workload table (CPU %, run-queue p50/p99, memory,
// PSI, disk and network rates) refreshed every interval, or with --json one
// snapshot. With a running atolld it shows the daemon's telemetry (GET
// /v1/workloads: no root needed beyond the API's access rule); without one it
// runs the collector in this process, which needs root (BPF programs,
// cgroupfs). --source picks one explicitly; the output always says which.
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <thread>

#include "bpf/collector/Collector.h"
#include "bpf/collector/TopView.h"
#include "tools/DaemonClient.h"
#include "tools/NumberOptions.h"
#include "tools/Verbs.h"

namespace Atoll::cli {

namespace {

struct TopArgs {
  double intervalSeconds = 1.0;
  int count = 0;
  std::string sort = "cpu";
  bool json = false;
  std::string source = "auto";
  DaemonConnection connection;
  std::vector<std::string> selectors = {"machine.slice/*"};
  std::string libvirtUri = "qemu:///system";
  std::string cgroupMount = telemetry::defaultCgroup2Mount();
};

template <typename T>
std::optional<T> optionalField(const nlohmann::json& row, const char* key) {
  if (!row.contains(key) || !row[key].is_number()) return std::nullopt;
  return row[key].get<T>();
}

// The inverse of telemetry::snapshotJson, for the table of a daemon's answer.
telemetry::WorkloadSnapshot snapshotFromJson(const nlohmann::json& row) {
  telemetry::WorkloadSnapshot s;
  s.workload.number = row.value("workload", 0u);
  s.workload.cgroup.name = row.value("name", "");
  if (row.contains("uuid") && row["uuid"].is_string()) s.workload.cgroup.uuid = row["uuid"];
  s.workload.cgroup.path = row.value("cgroup", "");
  s.workload.cgroup.cgroupId = row.value("cgroup_id", uint64_t{0});
  s.intervalSeconds = row.value("interval_seconds", 0.0);
  s.cpuCores = optionalField<double>(row, "cpu_cores");
  s.cgroupCpuCores = optionalField<double>(row, "cpu_stat_cores");
  s.runqP50Us = optionalField<double>(row, "runq_p50_us");
  s.runqP99Us = optionalField<double>(row, "runq_p99_us");
  s.runqWaitPerSecond = optionalField<double>(row, "runq_wait_per_second");
  s.switchesPerSecond = optionalField<double>(row, "switches_per_second");
  s.memoryBytes = optionalField<uint64_t>(row, "memory_bytes");
  s.cpuPressureSome10 = optionalField<double>(row, "cpu_pressure_some_avg10");
  s.memoryPressureSome10 = optionalField<double>(row, "memory_pressure_some_avg10");
  s.ioPressureSome10 = optionalField<double>(row, "io_pressure_some_avg10");
  s.diskReadBytesPerSecond = optionalField<double>(row, "disk_read_bytes_per_second");
  s.diskWriteBytesPerSecond = optionalField<double>(row, "disk_write_bytes_per_second");
  s.diskP99Us = optionalField<double>(row, "disk_p99_us");
  s.rxBytesPerSecond = optionalField<double>(row, "net_rx_bytes_per_second");
  s.txBytesPerSecond = optionalField<double>(row, "net_tx_bytes_per_second");
  return s;
}

std::vector<std::string> stringList(const nlohmann::json& body, const char* key) {
  std::vector<std::string> out;
  if (!body.contains(key) || !body[key].is_array()) return out;
  for (const auto& item : body[key])
    if (item.is_string()) out.push_back(item.get<std::string>());
  return out;
}

void printTable(std::vector<telemetry::WorkloadSnapshot> rows, telemetry::TopSort sort,
                const std::string& source, const std::vector<std::string>& degraded,
                const std::vector<std::string>& problems) {
  telemetry::sortSnapshots(rows, sort);
  if (::isatty(STDOUT_FILENO)) std::cout << "\033[H\033[2J";
  std::cout << "source: " << source << "\n";
  std::cout << telemetry::renderTable(rows);
  for (const std::string& line : degraded) std::cout << "degraded: " << line << "\n";
  for (const std::string& line : problems) std::cout << "problem: " << line << "\n";
  std::cout.flush();
}

// The daemon's telemetry. False when no daemon answered and `fallBack`
// allows a local collector instead.
bool runFromDaemon(const TopArgs& args, telemetry::TopSort sort, bool fallBack) {
  DaemonClient client(args.connection);
  const auto interval = std::chrono::duration<double>(args.intervalSeconds);
  const int rounds = args.json ? 1 : args.count;
  const std::string source = "atolld (" + args.connection.socketPath + ")";
  for (int round = 0; rounds == 0 || round < rounds; ++round) {
    if (round > 0) std::this_thread::sleep_for(interval);
    auto reply = client.get("/v1/workloads");
    if (round == 0 && fallBack && (!reply || reply->status == 503)) {
      std::string why =
          !reply ? describeFailure(reply.error()).message : describeErrorReply(*reply).message;
      std::cerr << "atoll top: " << why << "; running a local collector instead\n";
      return false;
    }
    DaemonReply answer = expectSuccess(std::move(reply), args.json);
    if (args.json) {
      answer.body["source"] = "atolld";
      std::cout << answer.body.dump(2) << "\n";
      return true;
    }
    std::vector<telemetry::WorkloadSnapshot> rows;
    for (const auto& row : answer.body.value("workloads", nlohmann::json::array()))
      rows.push_back(snapshotFromJson(row));
    printTable(std::move(rows), sort, source, stringList(answer.body, "degraded"),
               stringList(answer.body, "problems"));
  }
  return true;
}

void runLocal(const TopArgs& args, telemetry::TopSort sort) {
  telemetry::CollectorOptions options;
  options.cgroupMount = args.cgroupMount;
  options.selectors = args.selectors;
  options.libvirtUri = args.libvirtUri;
  auto collector = telemetry::Collector::start(options, nullptr);
  if (!collector) {
    std::cerr << "atoll top: " << collector.error().message() << "\n";
    throw CLI::RuntimeError(::geteuid() == 0 ? kExitFailure : kExitPermission);
  }
  const auto interval = std::chrono::duration<double>(args.intervalSeconds);
  (*collector)->tick();  // baseline: rates need two readings
  const int rounds = args.json ? 1 : args.count;
  for (int round = 0; rounds == 0 || round < rounds; ++round) {
    std::this_thread::sleep_for(interval);
    telemetry::TickReport report = (*collector)->tick();
    if (args.json) {
      telemetry::sortSnapshots(report.workloads, sort);
      nlohmann::json out = telemetry::tickJson(report, (*collector)->degraded());
      out["source"] = "local";
      std::cout << out.dump(2) << "\n";
      return;
    }
    printTable(std::move(report.workloads), sort, "local collector", (*collector)->degraded(),
               report.problems);
  }
}

void runTop(const TopArgs& args) {
  telemetry::TopSort sort{};
  if (!telemetry::parseTopSort(args.sort, sort)) {
    std::cerr << "atoll top: --sort '" << args.sort << "' is not one of cpu, runq, memory, disk, "
              << "net, name\n";
    throw CLI::RuntimeError(kExitUsage);
  }
  if (args.source == "local") return runLocal(args, sort);
  if (runFromDaemon(args, sort, args.source == "auto")) return;
  runLocal(args, sort);
}

}  // namespace

void addTopVerb(CLI::App& app) {
  auto args = std::make_shared<TopArgs>();
  CLI::App* top = app.add_subcommand(
      "top", "Live per-VM CPU, run-queue latency, memory, PSI, disk and network");
  top->add_option("--interval", args->intervalSeconds, "Seconds between refreshes")
      ->check(kFiniteNumber)
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  top->add_option("--count", args->count, "Refreshes before exiting (0: until interrupted)")
      ->check(kDecimal)
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  top->add_option("--sort", args->sort, "Sort by cpu, runq, memory, disk, net or name")
      ->capture_default_str();
  top->add_flag("--json", args->json, "Print one snapshot as JSON (with \"source\")");
  top->add_option("--source", args->source,
                  "auto: atolld when it answers, else a local collector (root); daemon; local")
      ->check(CLI::IsMember({"auto", "daemon", "local"}))
      ->capture_default_str();
  addDaemonOptions(*top, args->connection);
  top->add_option("--selector", args->selectors,
                  "Local collector: cgroup path glob below the cgroup2 mount that is a workload "
                  "(repeatable)")
      ->capture_default_str();
  top->add_option("--libvirt-uri", args->libvirtUri,
                  "Local collector: libvirt connection ('' to skip libvirt)")
      ->capture_default_str();
  top->add_option("--cgroup-mount", args->cgroupMount, "Local collector: cgroup2 mount point")
      ->capture_default_str();
  top->callback([args] { runTop(*args); });
}

}  // namespace Atoll::cli
