#pragma once
// The daemon watching itself: each tick's collect phase re-reads
// /proc/self/stat through a kept descriptor and publishes the daemon's CPU
// time, resident memory and thread count, so the "idle daemon under 0.1 % of a
// core" goal is visible on every host, not only in a benchmark.
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <chrono>
#include <mutex>
#include <optional>

#include "runtime/ProcStat.h"
#include "runtime/Subsystem.h"
#include "util/UniqueFd.h"

namespace Atoll {

class SelfMetricsSubsystem final : public Subsystem {
 public:
  static constexpr const char* kStatPath = "/proc/self/stat";

  static Result<std::shared_ptr<SelfMetricsSubsystem>> create(prometheus::Registry& registry);

  std::string_view name() const override { return "self-metrics"; }
  bool runsIn(Phase phase) const override { return phase == Phase::Collect; }
  Result<void> runPhase(Phase phase, const TickContext& context) override;
  nlohmann::json describe() const override;

 private:
  SelfMetricsSubsystem(UniqueFd stat, prometheus::Registry& registry);

  UniqueFd stat_;
  long ticksPerSecond_;
  long pageBytes_;
  std::chrono::steady_clock::time_point started_;
  prometheus::Counter& cpuSeconds_;
  prometheus::Gauge& cpuShare_;
  prometheus::Gauge& residentBytes_;
  prometheus::Gauge& threads_;
  prometheus::Gauge& uptime_;

  mutable std::mutex mutex_;
  std::optional<ProcStat> last_;
  std::chrono::steady_clock::time_point lastAt_;
  double lastShare_ = 0;
};

}  // namespace Atoll
