#include "runtime/SelfMetricsSubsystem.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "util/Fs.h"

namespace Atoll {

Result<std::shared_ptr<SelfMetricsSubsystem>> SelfMetricsSubsystem::create(
    prometheus::Registry& registry) {
  int fd = ::open(kStatPath, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error::fromErrno("open", kStatPath, errno);
  return std::shared_ptr<SelfMetricsSubsystem>(new SelfMetricsSubsystem(UniqueFd(fd), registry));
}

SelfMetricsSubsystem::SelfMetricsSubsystem(UniqueFd stat, prometheus::Registry& registry)
    : stat_(std::move(stat)),
      ticksPerSecond_(::sysconf(_SC_CLK_TCK)),
      pageBytes_(::sysconf(_SC_PAGESIZE)),
      started_(std::chrono::steady_clock::now()),
      cpuSeconds_(prometheus::BuildCounter()
                      .Name("atoll_daemon_cpu_seconds_total")
                      .Help("CPU time (user plus system) the daemon used, from /proc/self/stat")
                      .Register(registry)
                      .Add({})),
      cpuShare_(prometheus::BuildGauge()
                    .Name("atoll_daemon_cpu_share")
                    .Help("Share of one core the daemon used since the previous tick")
                    .Register(registry)
                    .Add({})),
      residentBytes_(prometheus::BuildGauge()
                         .Name("atoll_daemon_resident_bytes")
                         .Help("Resident memory of the daemon")
                         .Register(registry)
                         .Add({})),
      threads_(prometheus::BuildGauge()
                   .Name("atoll_daemon_threads")
                   .Help("Threads in the daemon")
                   .Register(registry)
                   .Add({})),
      uptime_(prometheus::BuildGauge()
                  .Name("atoll_daemon_uptime_seconds")
                  .Help("Seconds since the daemon started")
                  .Register(registry)
                  .Add({})) {}

Result<void> SelfMetricsSubsystem::runPhase(Phase phase, const TickContext&) {
  if (phase != Phase::Collect) return ok();
  auto text = preadAll(stat_.get(), kStatPath);
  if (!text) return text.error();
  auto stat = parseProcStat(*text);
  if (!stat) return stat.error();
  auto now = std::chrono::steady_clock::now();

  std::lock_guard lock(mutex_);
  if (last_) {
    uint64_t before = last_->userTicks + last_->systemTicks;
    uint64_t after = stat->userTicks + stat->systemTicks;
    double cpu = after >= before ? static_cast<double>(after - before) / ticksPerSecond_ : 0.0;
    cpuSeconds_.Increment(cpu);
    double wall = std::chrono::duration<double>(now - lastAt_).count();
    lastShare_ = wall > 0 ? cpu / wall : 0.0;
    cpuShare_.Set(lastShare_);
  } else {
    cpuSeconds_.Increment(static_cast<double>(stat->userTicks + stat->systemTicks) /
                          ticksPerSecond_);
  }
  residentBytes_.Set(static_cast<double>(stat->residentPages) * pageBytes_);
  threads_.Set(static_cast<double>(stat->threads));
  uptime_.Set(std::chrono::duration<double>(now - started_).count());
  last_ = *stat;
  lastAt_ = now;
  return ok();
}

nlohmann::json SelfMetricsSubsystem::describe() const {
  std::lock_guard lock(mutex_);
  if (!last_) return nlohmann::json::object();
  return {
      {"cpu_seconds", static_cast<double>(last_->userTicks + last_->systemTicks) / ticksPerSecond_},
      {"cpu_share_last_tick", lastShare_},
      {"resident_bytes", last_->residentPages * static_cast<uint64_t>(pageBytes_)},
      {"threads", last_->threads}};
}

}  // namespace Atoll
