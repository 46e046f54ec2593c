// atoll top: a live per-workload table (CPU %, run-queue p50/p99, memory,
// PSI, disk and network rates) refreshed every interval, or with --json one
// snapshot over one interval. Runs the collector in this process, so it
// needs root (BPF programs, cgroupfs).
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <thread>

#include "bpf/collector/Collector.h"
#include "bpf/collector/TopView.h"
#include "tools/Verbs.h"

namespace Atoll::cli {

namespace {

struct TopArgs {
  double intervalSeconds = 1.0;
  int count = 0;
  std::string sort = "cpu";
  bool json = false;
  std::vector<std::string> selectors = {"machine.slice/*"};
  std::string libvirtUri = "qemu:///system";
  std::string cgroupMount = telemetry::defaultCgroup2Mount();
};

void runTop(const TopArgs& args) {
  telemetry::TopSort sort{};
  if (!telemetry::parseTopSort(args.sort, sort)) {
    std::cerr << "atoll top: --sort '" << args.sort << "' is not one of cpu, runq, memory, disk, "
              << "net, name\n";
    throw CLI::RuntimeError(kExitUsage);
  }
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
    telemetry::sortSnapshots(report.workloads, sort);
    if (args.json) {
      std::cout << telemetry::tickJson(report, (*collector)->degraded()).dump(2) << "\n";
      return;
    }
    if (::isatty(STDOUT_FILENO)) std::cout << "\033[H\033[2J";
    std::cout << telemetry::renderTable(report.workloads);
    for (const std::string& line : (*collector)->degraded())
      std::cout << "degraded: " << line << "\n";
    for (const std::string& line : report.problems) std::cout << "problem: " << line << "\n";
    std::cout.flush();
  }
}

}  // namespace

void addTopVerb(CLI::App& app) {
  auto args = std::make_shared<TopArgs>();
  CLI::App* top = app.add_subcommand(
      "top", "Live per-VM CPU, run-queue latency, memory, PSI, disk and network (root)");
  top->add_option("--interval", args->intervalSeconds, "Seconds between refreshes")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  top->add_option("--count", args->count, "Refreshes before exiting (0: until interrupted)")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  top->add_option("--sort", args->sort, "Sort by cpu, runq, memory, disk, net or name")
      ->capture_default_str();
  top->add_flag("--json", args->json, "Print one snapshot over one interval as JSON");
  top->add_option("--selector", args->selectors,
                  "cgroup path glob below the cgroup2 mount that is a workload (repeatable)")
      ->capture_default_str();
  top->add_option("--libvirt-uri", args->libvirtUri, "libvirt connection ('' to skip libvirt)")
      ->capture_default_str();
  top->add_option("--cgroup-mount", args->cgroupMount, "cgroup2 mount point")
      ->capture_default_str();
  top->callback([args] { runTop(*args); });
}

}  // namespace Atoll::cli
