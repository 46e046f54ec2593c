#include "tests/runtime/WallClockLoad.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <sstream>
#include <string>
#include <thread>

#include "util/Fs.h"

namespace Atoll::test {

namespace {

constexpr int64_t kSliceNs = 10'000'000;  // the duty cycle's slice

void sleepUntilNs(int64_t atNs) {
  timespec until{static_cast<time_t>(atNs / 1'000'000'000),
                 static_cast<long>(atNs % 1'000'000'000)};
  while (::clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &until, nullptr) == EINTR) {
  }
}

// One busy thread; thread 0 records each burst's start.
void runThread(const LoadSchedule& s, int startsFd, bool records) {
  int64_t recordedBurst = -1;
  for (;;) {
    const int64_t now = realtimeNowNs();
    if (now >= s.endNs) return;
    if (now < s.firstBurstNs) {
      sleepUntilNs(std::min(s.firstBurstNs, s.endNs));
      continue;
    }
    const int64_t burst = (now - s.firstBurstNs) / s.periodNs;
    const int64_t burstStart = s.firstBurstNs + burst * s.periodNs;
    if (now >= burstStart + s.burstNs) {
      sleepUntilNs(std::min(burstStart + s.periodNs, s.endNs));
      continue;
    }
    if (records && burst != recordedBurst) {
      recordedBurst = burst;
      const std::string line = std::to_string(now) + "\n";
      (void)!::write(startsFd, line.data(), line.size());
    }
    const int64_t busyUntil = now + static_cast<int64_t>(s.duty * kSliceNs);
    while (realtimeNowNs() < busyUntil) asm volatile("" ::: "memory");
    if (s.duty < 1.0) sleepUntilNs(std::min(now + kSliceNs, burstStart + s.burstNs));
  }
}

}  // namespace

int64_t realtimeNowNs() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

Result<WallClockLoad> WallClockLoad::start(const std::string& cgroupDir,
                                           const LoadSchedule& schedule,
                                           const std::string& startsFile) {
  if (schedule.periodNs <= 0 || schedule.burstNs <= 0 || schedule.burstNs >= schedule.periodNs ||
      schedule.threads == 0 || schedule.duty <= 0 || schedule.duty > 1)
    return Error::invalid("start load", cgroupDir, std::to_string(schedule.burstNs),
                          "needs 0 < burst < period, threads > 0 and 0 < duty <= 1");
  const int startsFd = ::open(startsFile.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
  if (startsFd < 0) return Error::fromErrno("open", startsFile, errno);
  // The generator joins its cgroup before it starts: a failure is reported
  // here, not discovered as missing load later.
  int ready[2];
  if (::pipe(ready) != 0) {
    ::close(startsFd);
    return Error::fromErrno("pipe", startsFile, errno);
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int error = errno;
    ::close(startsFd);
    ::close(ready[0]);
    ::close(ready[1]);
    return Error::fromErrno("fork", cgroupDir, error);
  }
  if (pid == 0) {
    ::close(ready[0]);
    // Never outlive a crashed test by much.
    const int64_t left = (schedule.endNs - realtimeNowNs()) / 1'000'000'000;
    ::alarm(static_cast<unsigned>(std::max<int64_t>(left, 0) + 30));
    const std::string self = std::to_string(::getpid());
    auto procs = Dir::open(cgroupDir);
    const bool joined = procs && procs->writeFile("cgroup.procs", self);
    const char status = joined ? 'y' : 'n';
    (void)!::write(ready[1], &status, 1);
    ::close(ready[1]);
    if (!joined) ::_exit(1);
    std::vector<std::thread> threads;
    for (unsigned i = 0; i < schedule.threads; ++i)
      threads.emplace_back(runThread, std::cref(schedule), startsFd, i == 0);
    for (auto& t : threads) t.join();
    ::_exit(0);
  }
  ::close(startsFd);
  ::close(ready[1]);
  char status = 'n';
  const ssize_t got = ::read(ready[0], &status, 1);
  ::close(ready[0]);
  WallClockLoad load(pid, schedule, startsFile);
  if (got != 1 || status != 'y')
    return Error::invalid("start load", cgroupDir + "/cgroup.procs", std::to_string(pid),
                          "the load generator could not join its cgroup");
  return load;
}

WallClockLoad::WallClockLoad(WallClockLoad&& other) noexcept
    : pid_(other.pid_), schedule_(other.schedule_), startsFile_(std::move(other.startsFile_)) {
  other.pid_ = -1;
}

WallClockLoad::~WallClockLoad() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
}

std::vector<int64_t> WallClockLoad::burstStarts() const {
  std::vector<int64_t> out;
  std::istringstream lines(readFile(startsFile_).value_or(""));
  for (int64_t at = 0; lines >> at;) out.push_back(at);
  std::sort(out.begin(), out.end());
  return out;
}

bool WallClockLoad::inBurst(int64_t atNs) const {
  for (int64_t start : burstStarts())
    if (atNs >= start && atNs < start + schedule_.burstNs) return true;
  return false;
}

}  // namespace Atoll::test
