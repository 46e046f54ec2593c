// atoll bench: measurements an operator runs on a host.
//   isolation [--duration-ms N] [--interval-us N] [--noisy-threads N]
//             [--affinity-only] [--json]
// A noisy neighbour in one island and a wakeup-latency probe in another,
// without and with islands, side by side from one run (numa/IsolationBench.h).
#include <cstdio>
#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include "numa/IslandEnforcer.h"
#include "numa/IsolationBench.h"
#include "tools/NumberOptions.h"
#include "tools/Verbs.h"

namespace Atoll::cli {

namespace {

using namespace Atoll::numa;

// No host has more CPUs than the kernel's NR_CPUS bound; every busy thread
// beyond the CPUs only queues, and an unbounded count would spawn threads
// until the host runs out of them.
constexpr unsigned kMaxNoisyThreads = 8192;

struct IsolationArgs {
  unsigned durationMs = 2000;
  unsigned intervalUs = 1000;
  unsigned noisyThreads = 0;
  bool affinityOnly = false;
  bool json = false;
  std::string cgroupMount = std::string(kDefaultCgroupMount);
};

std::string placementName(IslandPlacement placement) {
  return placement == IslandPlacement::CgroupCpuset ? "cgroup-cpuset" : "sched_setaffinity";
}

void runIsolation(const IsolationArgs& args) {
  auto topology = Topology::fromHost();
  if (!topology) {
    std::cerr << "atoll bench isolation: " << topology.error().message() << "\n";
    throw CLI::RuntimeError(kExitFailure);
  }
  IsolationBenchConfig config;
  config.duration = std::chrono::milliseconds(args.durationMs);
  config.probeInterval = std::chrono::microseconds(args.intervalUs);
  config.noisyThreads = args.noisyThreads;
  config.cgroupMount = args.cgroupMount;
  config.allowCgroups = !args.affinityOnly;
  auto report = runIsolationBench(*topology, config);
  if (!report) {
    std::cerr << "atoll bench isolation: " << report.error().message() << "\n";
    throw CLI::RuntimeError(kExitFailure);
  }
  if (args.json) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& row : report->rows)
      rows.push_back({{"scenario", row.scenario},
                      {"noisy_cpus", formatCpuList(row.noisyCpus)},
                      {"probe_cpus", formatCpuList(row.probeCpus)},
                      {"samples", row.latency.samples},
                      {"p50_us", row.latency.p50Us},
                      {"p99_us", row.latency.p99Us},
                      {"max_us", row.latency.maxUs}});
    nlohmann::json out = {{"placement", placementName(report->placement)},
                          {"noisy_threads", report->noisyThreads},
                          {"duration_ms", args.durationMs},
                          {"interval_us", args.intervalUs},
                          {"rows", rows}};
    if (!report->placementNote.empty()) out["placement_note"] = report->placementNote;
    std::cout << out.dump(2) << "\n";
    return;
  }
  std::cout << "islands by " << placementName(report->placement);
  if (!report->placementNote.empty())
    std::cout << " (stand-in for cgroup v2 cpuset islands: " << report->placementNote << ")";
  std::cout << "; noisy neighbour: " << report->noisyThreads << " busy thread(s)\n";
  std::printf("%-16s %-10s %-10s %8s %10s %10s %10s\n", "scenario", "noisy", "probe", "samples",
              "p50 us", "p99 us", "max us");
  for (const auto& row : report->rows) {
    std::printf("%-16s %-10s %-10s %8zu %10.1f %10.1f %10.1f\n", row.scenario.c_str(),
                row.noisyCpus.empty() ? "any" : formatCpuList(row.noisyCpus).c_str(),
                row.probeCpus.empty() ? "any" : formatCpuList(row.probeCpus).c_str(),
                row.latency.samples, row.latency.p50Us, row.latency.p99Us, row.latency.maxUs);
  }
  std::fflush(stdout);
}

}  // namespace

void addBenchVerb(CLI::App& app) {
  CLI::App* verb = app.add_subcommand("bench", "Measurements on this host");
  verb->require_subcommand(1);
  auto args = std::make_shared<IsolationArgs>();
  CLI::App* isolation = verb->add_subcommand(
      "isolation", "Probe wakeup latency next to a noisy neighbour, without and with islands");
  isolation->add_option("--duration-ms", args->durationMs, "Probe time per scenario")
      ->capture_default_str()
      ->check(kDecimal)
      ->check(CLI::Range(100u, 600000u));
  isolation->add_option("--interval-us", args->intervalUs, "Probe sleep between wakeups")
      ->capture_default_str()
      ->check(kDecimal)
      ->check(CLI::Range(50u, 1000000u));
  isolation
      ->add_option("--noisy-threads", args->noisyThreads,
                   "Busy threads of the neighbour (default: one per CPU)")
      ->check(kDecimal)
      ->check(CLI::Range(0u, kMaxNoisyThreads));
  isolation->add_option("--cgroup-root", args->cgroupMount, "The cgroup2 mount")
      ->capture_default_str();
  isolation->add_flag("--affinity-only", args->affinityOnly,
                      "Use sched_setaffinity as the islands even where cgroup v2 cpuset exists");
  isolation->add_flag("--json", args->json, "Machine-readable output");
  isolation->callback([args] { runIsolation(*args); });
}

}  // namespace Atoll::cli
