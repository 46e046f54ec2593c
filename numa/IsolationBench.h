#pragma once
// The isolation benchmark: a noisy neighbour (busy threads) in one island
// and a latency probe (a process that sleeps to absolute CLOCK_MONOTONIC
// deadlines and records how late it woke) in another, run once without
// islands and once with them, so the two rows come from the same run on the
// same host. Islands are cgroup v2 cpusets under their own managed root when
// the host has them; otherwise sched_setaffinity stands in for them, and
// the report says so.
#include <chrono>
#include <string>
#include <vector>

#include "numa/Topology.h"
#include "util/Result.h"

namespace Atoll::numa {

inline constexpr std::string_view kBenchManagedRoot = "atoll-bench.slice";

struct LatencySummary {
  std::size_t samples = 0;
  double p50Us = 0;
  double p99Us = 0;
  double maxUs = 0;
};

// Nearest-rank percentiles of wakeup latencies in microseconds.
LatencySummary summarizeLatencies(std::vector<double> latenciesUs);

enum class IslandPlacement { CgroupCpuset, Affinity };

struct IsolationBenchConfig {
  std::chrono::milliseconds duration{2000};  // per scenario
  std::chrono::microseconds probeInterval{1000};
  unsigned noisyThreads = 0;  // 0: one per host CPU
  std::string cgroupMount = "/sys/fs/cgroup";
  bool allowCgroups = true;  // false: always the affinity stand-in
};

struct IsolationRow {
  std::string scenario;  // "without islands", "with islands"
  CpuList noisyCpus;     // empty: anywhere
  CpuList probeCpus;
  LatencySummary latency;
};

struct IsolationReport {
  IslandPlacement placement = IslandPlacement::Affinity;
  std::string placementNote;  // why the stand-in was used, when it was
  unsigned noisyThreads = 0;
  std::vector<IsolationRow> rows;
};

// The islands the benchmark uses: the probe gets the last core, the noisy
// neighbour every other CPU but the first core, which stays with the shared
// island (the host). Needs at least three cores for that; with fewer the
// noisy island also takes the first core (the affinity stand-in allows it).
struct IsolationLayout {
  CpuList noisy;
  CpuList probe;
  CpuList shared;
};
Result<IsolationLayout> isolationLayout(const Topology& topology);

Result<IsolationReport> runIsolationBench(const Topology& topology,
                                          const IsolationBenchConfig& config);

}  // namespace Atoll::numa
