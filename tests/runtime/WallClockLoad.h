#pragma once
// Synthetic CPU load for in-VM scenarios: a child process that joins a cgroup
// and runs busy threads on a schedule of the wall clock (CLOCK_REALTIME), so
// that its period is exact whatever the guest's speed and a forecaster
// stepping on the same clock sees the same phase every period. Each thread
// is busy for `duty` of every 10 ms slice during a burst and sleeps between
// bursts. The start of every burst, as the generator saw it, is appended to
// a file (realtime nanoseconds, one per line) for the test to compare with.
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "util/Result.h"

namespace Atoll::test {

struct LoadSchedule {
  int64_t firstBurstNs = 0;  // realtime; bursts start at first + k * period
  int64_t periodNs = 0;
  int64_t burstNs = 0;  // how long each burst lasts (< period)
  int64_t endNs = 0;    // realtime; the generator exits here
  unsigned threads = 1;
  double duty = 1.0;  // share of each 10 ms slice a thread is busy in a burst (0..1]
};

class WallClockLoad {
 public:
  // Forks the generator; it moves itself into `cgroupDir` (its cgroup.procs)
  // before any burst and records burst starts in `startsFile`.
  static Result<WallClockLoad> start(const std::string& cgroupDir, const LoadSchedule& schedule,
                                     const std::string& startsFile);
  WallClockLoad(WallClockLoad&& other) noexcept;
  WallClockLoad& operator=(WallClockLoad&&) = delete;
  WallClockLoad(const WallClockLoad&) = delete;
  ~WallClockLoad();  // kills and reaps the generator

  // The burst starts recorded so far, ascending.
  std::vector<int64_t> burstStarts() const;
  const LoadSchedule& schedule() const { return schedule_; }
  // Whether `atNs` falls within a recorded burst.
  bool inBurst(int64_t atNs) const;

 private:
  WallClockLoad(pid_t pid, LoadSchedule schedule, std::string startsFile)
      : pid_(pid), schedule_(schedule), startsFile_(std::move(startsFile)) {}
  pid_t pid_ = -1;
  LoadSchedule schedule_;
  std::string startsFile_;
};

// CLOCK_REALTIME in nanoseconds, the clock atolld stamps its decisions with.
int64_t realtimeNowNs();

}  // namespace Atoll::test
