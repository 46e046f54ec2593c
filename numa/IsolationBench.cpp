#include "numa/IsolationBench.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <thread>

#include "numa/CgroupV2.h"
#include "numa/CpuSet.h"
#include "numa/IslandEnforcer.h"
#include "util/UniqueFd.h"

namespace Atoll::numa {

namespace {

constexpr int kChildReadyTimeoutMs = 10'000;
constexpr char kGo = 'g';

Result<void> setAffinity(pid_t pid, const CpuList& cpus) {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (unsigned cpu : cpus) CPU_SET(cpu, &set);
  if (::sched_setaffinity(pid, sizeof set, &set) != 0)
    return Error::fromErrno("sched_setaffinity", "pid " + std::to_string(pid), errno,
                            formatCpuList(cpus));
  return ok();
}

// Waits for one byte (the parent's go) on fd.
bool waitForGo(int fd) {
  char byte = 0;
  while (true) {
    ssize_t got = ::read(fd, &byte, 1);
    if (got == 1) return byte == kGo;
    if (got < 0 && errno == EINTR) continue;
    return false;
  }
}

// The noisy neighbour: busy threads until killed.
[[noreturn]] void noisyChild(int goFd, unsigned threads) {
  if (!waitForGo(goFd)) ::_exit(1);
  std::vector<std::thread> workers;
  static std::atomic<unsigned long> sink{0};
  for (unsigned i = 1; i < threads; ++i)
    workers.emplace_back([] {
      for (unsigned long n = 0;; ++n) sink.fetch_add(n, std::memory_order_relaxed);
    });
  for (unsigned long n = 0;; ++n) sink.fetch_add(n, std::memory_order_relaxed);
}

// The probe: sleeps to absolute deadlines, writes each wakeup's lateness
// in nanoseconds (int64) to resultFd, exits after `duration`.
[[noreturn]] void probeChild(int goFd, int resultFd, std::chrono::nanoseconds duration,
                             std::chrono::nanoseconds interval) {
  if (!waitForGo(goFd)) ::_exit(1);
  auto toNs = [](const timespec& t) { return std::int64_t(t.tv_sec) * 1'000'000'000 + t.tv_nsec; };
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  const std::int64_t end = toNs(now) + duration.count();
  std::int64_t next = toNs(now) + interval.count();
  std::vector<std::int64_t> lateness;
  lateness.reserve(std::size_t(duration / interval) + 1);
  while (next < end) {
    timespec deadline{time_t(next / 1'000'000'000), long(next % 1'000'000'000)};
    while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, nullptr) == EINTR) {
    }
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    const std::int64_t woke = toNs(now);
    lateness.push_back(woke - next);
    // Periods missed while the probe waited for a CPU are skipped (as
    // cyclictest does), so one long stall is one late sample, not a backlog.
    do {
      next += interval.count();
    } while (next <= woke);
  }
  const char* bytes = reinterpret_cast<const char*>(lateness.data());
  std::size_t left = lateness.size() * sizeof(std::int64_t);
  while (left > 0) {
    ssize_t wrote = ::write(resultFd, bytes, left);
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote <= 0) ::_exit(2);
    bytes += wrote;
    left -= std::size_t(wrote);
  }
  ::_exit(0);
}

struct Child {
  pid_t pid = -1;
  UniqueFd go;  // write kGo to start it

  void stop() {
    if (pid <= 0) return;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    pid = -1;
  }
};

template <typename Body>
Result<Child> spawn(Body body) {
  int pipeFds[2];
  if (::pipe2(pipeFds, O_CLOEXEC) != 0) return Error::fromErrno("pipe2", "isolation bench", errno);
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(pipeFds[0]);
    ::close(pipeFds[1]);
    return Error::fromErrno("fork", "isolation bench", errno);
  }
  if (pid == 0) {
    ::close(pipeFds[1]);
    body(pipeFds[0]);
  }
  ::close(pipeFds[0]);
  Child child;
  child.pid = pid;
  child.go = UniqueFd(pipeFds[1]);
  return child;
}

Result<void> start(Child& child) {
  if (::write(child.go.get(), &kGo, 1) != 1)
    return Error::fromErrno("start", "pid " + std::to_string(child.pid), errno);
  return ok();
}

// Where the two processes go in a scenario.
struct Placer {
  virtual ~Placer() = default;
  virtual Result<void> placeNoisy(pid_t pid) = 0;
  virtual Result<void> placeProbe(pid_t pid) = 0;
};

struct Unplaced final : Placer {
  Result<void> placeNoisy(pid_t) override { return ok(); }
  Result<void> placeProbe(pid_t) override { return ok(); }
};

struct AffinityPlacer final : Placer {
  explicit AffinityPlacer(const IsolationLayout& layout) : layout_(layout) {}
  Result<void> placeNoisy(pid_t pid) override { return setAffinity(pid, layout_.noisy); }
  Result<void> placeProbe(pid_t pid) override { return setAffinity(pid, layout_.probe); }
  const IsolationLayout& layout_;
};

struct CgroupPlacer final : Placer {
  explicit CgroupPlacer(IslandEnforcer& enforcer) : enforcer_(enforcer) {}
  Result<void> placeNoisy(pid_t pid) override { return enforcer_.pin("noisy", pid); }
  Result<void> placeProbe(pid_t pid) override { return enforcer_.pin("probe", pid); }
  IslandEnforcer& enforcer_;
};

Result<LatencySummary> runScenario(const IsolationBenchConfig& config, unsigned noisyThreads,
                                   Placer& placer) {
  auto noisy = spawn([&](int goFd) { noisyChild(goFd, noisyThreads); });
  if (!noisy) return noisy.error();
  int results[2];
  if (::pipe2(results, O_CLOEXEC) != 0) {
    noisy->stop();
    return Error::fromErrno("pipe2", "isolation bench", errno);
  }
  UniqueFd resultRead(results[0]);
  auto probe =
      spawn([&](int goFd) { probeChild(goFd, results[1], config.duration, config.probeInterval); });
  ::close(results[1]);
  if (!probe) {
    noisy->stop();
    return probe.error();
  }
  auto cleanup = [&](Error error) -> Result<LatencySummary> {
    noisy->stop();
    probe->stop();
    return error;
  };
  if (auto placed = placer.placeNoisy(noisy->pid); !placed) return cleanup(placed.error());
  if (auto placed = placer.placeProbe(probe->pid); !placed) return cleanup(placed.error());
  if (auto started = start(*noisy); !started) return cleanup(started.error());
  // The neighbour gets a moment to load its CPUs before the probe starts.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  if (auto started = start(*probe); !started) return cleanup(started.error());

  std::string bytes;
  const int timeoutMs = int(config.duration.count()) + kChildReadyTimeoutMs;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
  char buffer[65536];
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      return cleanup(Error::invalid("probe", "isolation bench", {}, "timed out"));
    pollfd readable{resultRead.get(), POLLIN, 0};
    int ready = ::poll(&readable, 1, int(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    ssize_t got = ::read(resultRead.get(), buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return cleanup(Error::fromErrno("read", "probe results", errno));
    if (got == 0) break;
    bytes.append(buffer, std::size_t(got));
  }
  noisy->stop();
  int status = 0;
  ::waitpid(probe->pid, &status, 0);
  probe->pid = -1;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return Error::invalid("probe", "isolation bench", std::to_string(status),
                          "the latency probe did not finish");
  std::vector<double> latencies;
  for (std::size_t at = 0; at + sizeof(std::int64_t) <= bytes.size(); at += sizeof(std::int64_t)) {
    std::int64_t ns = 0;
    std::memcpy(&ns, bytes.data() + at, sizeof ns);
    latencies.push_back(double(ns) / 1000.0);
  }
  return summarizeLatencies(std::move(latencies));
}

// Why cgroup islands cannot be used here; empty when they can.
std::string cgroupUnavailable(const Topology& topology, const IsolationBenchConfig& config) {
  if (!config.allowCgroups) return "cgroup islands not requested";
  if (topology.cores().size() < 3)
    return "fewer than three cores: no room for two islands and the shared island";
  auto mount = CgroupV2::open(config.cgroupMount);
  if (!mount) return "no cgroup v2 mount at " + config.cgroupMount;
  auto enabled = mount->enabledControllers();
  if (!enabled || std::find(enabled->begin(), enabled->end(), "cpuset") == enabled->end())
    return "the cpuset controller is not enabled at " + config.cgroupMount;
  return {};
}

}  // namespace

LatencySummary summarizeLatencies(std::vector<double> latenciesUs) {
  LatencySummary out;
  out.samples = latenciesUs.size();
  if (latenciesUs.empty()) return out;
  std::sort(latenciesUs.begin(), latenciesUs.end());
  auto rank = [&](double fraction) {
    std::size_t index = std::size_t(std::ceil(fraction * double(latenciesUs.size())));
    return latenciesUs[std::min(latenciesUs.size() - 1, index == 0 ? 0 : index - 1)];
  };
  out.p50Us = rank(0.50);
  out.p99Us = rank(0.99);
  out.maxUs = latenciesUs.back();
  return out;
}

Result<IsolationLayout> isolationLayout(const Topology& topology) {
  const auto& cores = topology.cores();
  if (cores.size() < 2)
    return Error::invalid("isolation bench", topology.source(), formatCpuList(topology.cpus()),
                          "needs at least two cores (one per island)");
  IsolationLayout layout;
  layout.probe = cores.back().cpus;
  const std::size_t firstNoisy = cores.size() >= 3 ? 1 : 0;
  for (std::size_t i = 0; i < firstNoisy; ++i)
    layout.shared = unionOf(layout.shared, cores[i].cpus);
  for (std::size_t i = firstNoisy; i + 1 < cores.size(); ++i)
    layout.noisy = unionOf(layout.noisy, cores[i].cpus);
  return layout;
}

Result<IsolationReport> runIsolationBench(const Topology& topology,
                                          const IsolationBenchConfig& config) {
  auto layout = isolationLayout(topology);
  if (!layout) return layout.error();
  IsolationReport report;
  report.noisyThreads =
      config.noisyThreads > 0 ? config.noisyThreads : unsigned(topology.cpus().size());
  report.placementNote = cgroupUnavailable(topology, config);
  report.placement =
      report.placementNote.empty() ? IslandPlacement::CgroupCpuset : IslandPlacement::Affinity;

  Unplaced unplaced;
  auto without = runScenario(config, report.noisyThreads, unplaced);
  if (!without) return without.error();
  report.rows.push_back({"without islands", {}, {}, *without});

  Result<LatencySummary> with = LatencySummary{};
  if (report.placement == IslandPlacement::CgroupCpuset) {
    auto enforcer =
        IslandEnforcer::open(topology, config.cgroupMount, std::string(kBenchManagedRoot));
    if (!enforcer) return enforcer.error();
    Island noisy{"noisy", layout->noisy, nodesOfCpus(topology, layout->noisy), {}, {}};
    Island probe{"probe", layout->probe, nodesOfCpus(topology, layout->probe), {}, {}};
    if (auto applied = enforcer->apply({noisy, probe}); !applied) return applied.error();
    CgroupPlacer placer(*enforcer);
    with = runScenario(config, report.noisyThreads, placer);
    // The benchmark's islands go again, whatever happened.
    auto removedNoisy = enforcer->remove("noisy");
    auto removedProbe = enforcer->remove("probe");
    auto mount = Dir::open(config.cgroupMount);
    if (mount) (void)mount->removeChild(kBenchManagedRoot);
    if (!removedNoisy) return removedNoisy.error();
    if (!removedProbe) return removedProbe.error();
  } else {
    AffinityPlacer placer(*layout);
    with = runScenario(config, report.noisyThreads, placer);
  }
  if (!with) return with.error();
  report.rows.push_back({"with islands", layout->noisy, layout->probe, *with});
  return report;
}

}  // namespace Atoll::numa
