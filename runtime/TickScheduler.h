#pragma once
// Drives registered subsystems through the phases of one tick. Each subsystem
// runs on a worker thread of its own, so the scheduler can stop waiting for
// it: a phase still running when the subsystem's budget for the tick ends is
// an overrun. The overrun is reported, the tick carries on with the other
// subsystems, and the late subsystem is skipped (and reported as skipped)
// until its phase returns. One slow or stuck subsystem therefore never delays
// the others by more than its own budget, once.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "runtime/Subsystem.h"

namespace Atoll {

struct PhaseRun {
  Phase phase = Phase::Collect;
  std::chrono::microseconds elapsed{0};  // until return, or until the budget ended
  bool finished = false;                 // false: still running when the budget ended
  std::string error;                     // the phase's error, empty on success
};

struct SubsystemTick {
  std::string name;
  std::vector<PhaseRun> phases;
  std::chrono::microseconds used{0};
  bool overran = false;  // ran past its budget in this tick
  bool skipped = false;  // still busy with an earlier overrun, did not run
};

struct TickReport {
  uint64_t tick = 0;
  std::chrono::system_clock::time_point startedAt;
  std::chrono::microseconds duration{0};
  std::vector<SubsystemTick> subsystems;
  bool anyOverrun() const;
};

struct SubsystemStatus {
  std::string name;
  std::chrono::milliseconds budget{0};
  std::vector<Phase> phases;
  std::string state;  // "idle", "overrun" (a phase is running past its budget), "failed"
  uint64_t ticks = 0;
  uint64_t overruns = 0;
  uint64_t failures = 0;
  std::string lastError;
  std::optional<SubsystemTick> last;
  nlohmann::json details;
};

class TickScheduler {
 public:
  TickScheduler() = default;
  ~TickScheduler();
  TickScheduler(const TickScheduler&) = delete;
  TickScheduler& operator=(const TickScheduler&) = delete;

  // Registration order is the order within each phase.
  void add(std::shared_ptr<Subsystem> subsystem, std::chrono::milliseconds budget);
  bool setBudget(std::string_view name, std::chrono::milliseconds budget);
  std::shared_ptr<Subsystem> find(std::string_view name) const;

  TickReport runTick(uint64_t tick, std::chrono::milliseconds interval);
  std::vector<SubsystemStatus> status() const;

  // Lets running phases finish for up to `timeout`, then stops every worker.
  // Returns the subsystems still running (their threads are abandoned).
  std::vector<std::string> stop(std::chrono::milliseconds timeout);

 private:
  struct Worker;
  std::vector<std::shared_ptr<Worker>> workers_;
  bool stopped_ = false;
};

}  // namespace Atoll
