// atolld's own cost: CPU per tick of the idle daemon (in-process and as a
// real process) and local API latency, each next to a baseline measured in
// the same run and reported as a ratio to it ("x_baseline").
#include <benchmark/benchmark.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "runtime/Daemon.h"
#include "tests/runtime/TestSupport.h"

namespace Atoll {
namespace {

using namespace std::chrono_literals;

double processCpuSeconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Baselines, in seconds per iteration, filled by the baseline benchmarks that
// run first and read by the ones compared with them.
double gWakeupBaseline = 0;
double gRoundTripBaseline = 0;
double gSyncBaseline = 0;

double secondsPerIteration(const benchmark::State& state,
                           std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() /
         static_cast<double>(state.iterations());
}

struct BenchDaemon {
  test::TempDir dir;
  std::unique_ptr<Daemon> daemon;
  BenchDaemon() {
    DaemonConfig config = defaultConfig();
    config.socketPath = dir.file("api.sock");
    config.stateDirectory = dir.file("state");
    config.metricsEnabled = false;
    DaemonOptions options;
    options.handleSignals = false;
    auto started = Daemon::start(config, std::move(options));
    if (!started) throw std::runtime_error(started.error().message());
    daemon = std::move(*started);
  }
};

// Baseline: one wake-up of an event loop with nothing to do (ppoll on an
// eventfd with a zero timeout plus a clock read), the floor of any tick.
void BM_LoopWakeupBaseline(benchmark::State& state) {
  int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  timespec zero{};
  double cpu = processCpuSeconds();
  for (auto _ : state) {
    pollfd p{fd, POLLIN, 0};
    benchmark::DoNotOptimize(::ppoll(&p, 1, &zero, nullptr));
    benchmark::DoNotOptimize(std::chrono::steady_clock::now());
  }
  gWakeupBaseline = (processCpuSeconds() - cpu) / static_cast<double>(state.iterations());
  state.counters["process_cpu_us"] = gWakeupBaseline * 1e6;
  ::close(fd);
}
BENCHMARK(BM_LoopWakeupBaseline);

// One idle tick of the daemon with its built-in subsystems: every phase
// handed to each subsystem's worker thread and back. CPU of all threads.
void BM_IdleDaemonTick(benchmark::State& state) {
  BenchDaemon bench;
  double cpu = processCpuSeconds();
  for (auto _ : state) benchmark::DoNotOptimize(bench.daemon->tickOnce());
  double perTick = (processCpuSeconds() - cpu) / static_cast<double>(state.iterations());
  state.counters["process_cpu_us"] = perTick * 1e6;
  // At the default 1 s tick, the share of one core the ticks cost.
  state.counters["core_percent_at_1s_tick"] = perTick * 100.0;
  if (gWakeupBaseline > 0) state.counters["x_baseline"] = perTick / gWakeupBaseline;
}
BENCHMARK(BM_IdleDaemonTick);

// The real atolld binary left idle on built-in defaults (1 s tick): CPU of all
// its threads from /proc/PID/task/*/schedstat (nanoseconds) over a window.
uint64_t processRunNanoseconds(pid_t pid) {
  std::string taskDir = "/proc/" + std::to_string(pid) + "/task";
  uint64_t total = 0;
  DIR* dir = ::opendir(taskDir.c_str());
  if (dir == nullptr) return 0;
  while (dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    std::string text = test::readTextFile(taskDir + "/" + entry->d_name + "/schedstat");
    total += std::strtoull(text.c_str(), nullptr, 10);
  }
  ::closedir(dir);
  return total;
}

void BM_IdleDaemonProcess(benchmark::State& state) {
  double window = 10;
  if (const char* seconds = std::getenv("ATOLL_BENCH_IDLE_SECONDS")) window = std::atof(seconds);
  test::TempDir dir;
  std::string failure;
  auto process = test::DaemonProcess::start(dir.path(),
                                            {"--socket", dir.file("api.sock"), "--state-dir",
                                             dir.file("state"), "--metrics-listen", "127.0.0.1:0"},
                                            &failure);
  if (!process) {
    state.SkipWithError(("atolld did not start: " + failure).c_str());
    return;
  }
  std::this_thread::sleep_for(1500ms);  // past start-up work
  auto ticks = [&] {
    auto response = test::rawExchange(dir.file("api.sock"), test::httpRequest("GET", "/v1/status"));
    auto status = nlohmann::json::parse(response.body, nullptr, false);
    return status.is_object() ? status["tick"]["count"].get<double>() : 0.0;
  };
  double cpuShare = 0;
  double perTick = 0;
  for (auto _ : state) {
    double ticksBefore = ticks();
    uint64_t before = processRunNanoseconds(process->pid());
    auto started = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(window));
    uint64_t after = processRunNanoseconds(process->pid());
    double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    // The status requests themselves are not idle work; they cost one API
    // request each, measured below, and are left in (an upper bound).
    double ticksAfter = ticks();
    cpuShare = static_cast<double>(after - before) / 1e9 / elapsed;
    perTick = ticksAfter > ticksBefore
                  ? static_cast<double>(after - before) / 1e9 / (ticksAfter - ticksBefore)
                  : 0;
    state.SetIterationTime(elapsed);
  }
  state.counters["core_percent"] = cpuShare * 100.0;
  state.counters["cpu_us_per_tick"] = perTick * 1e6;
}
BENCHMARK(BM_IdleDaemonProcess)->Iterations(1)->UseManualTime()->Unit(benchmark::kSecond);

// Baseline: connect to a unix socket, send a request-sized message, receive a
// reply, close: what any request over the socket costs without HTTP or the
// daemon.
void BM_UnixSocketRoundTripBaseline(benchmark::State& state) {
  test::TempDir dir;
  std::string path = dir.file("echo.sock");
  int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  ::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::listen(listener, 64);
  std::atomic<bool> running{true};
  std::thread server([&] {
    char buffer[512];
    while (running) {
      int fd = ::accept(listener, nullptr, nullptr);
      if (fd < 0) break;
      ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n > 0) benchmark::DoNotOptimize(::send(fd, buffer, static_cast<size_t>(n), MSG_NOSIGNAL));
      ::close(fd);
    }
  });
  std::string request = test::httpRequest("GET", "/v1/status");
  auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    auto response = test::rawExchange(path, request);
    benchmark::DoNotOptimize(response);
  }
  gRoundTripBaseline = secondsPerIteration(state, t0);
  running = false;
  ::shutdown(listener, SHUT_RDWR);
  server.join();
  ::close(listener);
}
BENCHMARK(BM_UnixSocketRoundTripBaseline)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_ApiStatusRequest(benchmark::State& state) {
  BenchDaemon bench;
  std::string socket = bench.dir.file("api.sock");
  std::string request = test::httpRequest("GET", "/v1/status");
  auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    auto response = test::rawExchange(socket, request);
    if (response.status != 200) state.SkipWithError("status request failed");
  }
  double perRequest = secondsPerIteration(state, t0);
  if (gRoundTripBaseline > 0) state.counters["x_baseline"] = perRequest / gRoundTripBaseline;
}
BENCHMARK(BM_ApiStatusRequest)->UseRealTime()->Unit(benchmark::kMicrosecond);

// Baseline for a state change: the same connect/send/receive round trip as
// above, with the server appending ~200 bytes to a file and fdatasync()ing
// it before it answers: the least any durable, acknowledged change costs.
void BM_DurableRoundTripBaseline(benchmark::State& state) {
  test::TempDir dir;
  std::string path = dir.file("echo.sock");
  int file = ::open(dir.file("append").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  ::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::listen(listener, 64);
  std::thread server([&] {
    char buffer[512];
    std::string record(200, 'r');
    for (;;) {
      int fd = ::accept(listener, nullptr, nullptr);
      if (fd < 0) break;
      ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      benchmark::DoNotOptimize(::write(file, record.data(), record.size()));
      ::fdatasync(file);
      if (n > 0) benchmark::DoNotOptimize(::send(fd, buffer, static_cast<size_t>(n), MSG_NOSIGNAL));
      ::close(fd);
    }
  });
  std::string request =
      test::httpRequest("PUT", "/v1/state/bench/k", R"({"value": {"island": "a"}})");
  auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) benchmark::DoNotOptimize(test::rawExchange(path, request));
  gSyncBaseline = secondsPerIteration(state, t0);
  ::shutdown(listener, SHUT_RDWR);
  server.join();
  ::close(listener);
  ::close(file);
}
BENCHMARK(BM_DurableRoundTripBaseline)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_ApiPutRequest(benchmark::State& state) {
  BenchDaemon bench;
  std::string socket = bench.dir.file("api.sock");
  uint64_t i = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    std::string request = test::httpRequest("PUT", "/v1/state/bench/k" + std::to_string(i++ % 100),
                                            R"({"value": {"island": "a"}})");
    if (test::rawExchange(socket, request).status != 200) state.SkipWithError("PUT failed");
  }
  double perRequest = secondsPerIteration(state, t0);
  if (gSyncBaseline > 0) state.counters["x_baseline"] = perRequest / gSyncBaseline;
}
BENCHMARK(BM_ApiPutRequest)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace Atoll

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);  // the in-process daemons' start-up lines
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
