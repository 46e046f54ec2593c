#include "runtime/TickScheduler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <thread>

namespace Atoll {

using Clock = std::chrono::steady_clock;
using std::chrono::duration_cast;
using std::chrono::microseconds;

bool TickReport::anyOverrun() const {
  for (const auto& s : subsystems)
    if (s.overran) return true;
  return false;
}

// One subsystem and the thread that runs its phases. Shared with that thread
// so an abandoned (stuck) worker stays valid until it returns.
struct TickScheduler::Worker {
  std::shared_ptr<Subsystem> subsystem;
  std::string name;
  std::thread thread;

  mutable std::mutex mutex;
  std::condition_variable wake;  // both directions: job handed over, job done
  std::chrono::milliseconds budget{0};
  bool stopping = false;
  bool hasJob = false;
  bool running = false;
  Phase jobPhase = Phase::Collect;
  TickContext jobContext;
  uint64_t jobSerial = 0;
  uint64_t doneSerial = 0;
  microseconds lastElapsed{0};
  std::string lastJobError;

  uint64_t ticks = 0;
  uint64_t overruns = 0;
  uint64_t failures = 0;
  std::string lastError;
  bool failedLastTick = false;
  std::optional<SubsystemTick> last;

  static void loop(std::shared_ptr<Worker> self) {
    std::unique_lock lock(self->mutex);
    for (;;) {
      self->wake.wait(lock, [&] { return self->hasJob || self->stopping; });
      if (!self->hasJob) return;  // stopping with nothing to do
      self->hasJob = false;
      Phase phase = self->jobPhase;
      TickContext context = self->jobContext;
      uint64_t serial = self->jobSerial;
      lock.unlock();

      auto started = Clock::now();
      std::string error;
      try {
        auto result = self->subsystem->runPhase(phase, context);
        if (!result) error = result.error().message();
      } catch (const std::exception& e) {
        error = std::string("exception: ") + e.what();
      }
      auto elapsed = duration_cast<microseconds>(Clock::now() - started);

      lock.lock();
      bool late = Clock::now() > context.deadline;
      self->lastElapsed = elapsed;
      self->lastJobError = error;
      self->doneSerial = serial;
      self->running = false;
      if (!error.empty()) {
        ++self->failures;
        self->lastError = std::string(phaseName(phase)) + ": " + error;
      }
      if (late)
        spdlog::info("event=subsystem_returned_late subsystem={} phase={} tick={} elapsed_us={}",
                     self->name, phaseName(phase), context.tick, elapsed.count());
      self->wake.notify_all();
    }
  }
};

TickScheduler::~TickScheduler() {
  if (!stopped_) stop(std::chrono::milliseconds(0));
}

void TickScheduler::add(std::shared_ptr<Subsystem> subsystem, std::chrono::milliseconds budget) {
  auto worker = std::make_shared<Worker>();
  worker->name = std::string(subsystem->name());
  worker->subsystem = std::move(subsystem);
  worker->budget = budget;
  worker->thread = std::thread(&Worker::loop, worker);
  workers_.push_back(std::move(worker));
}

bool TickScheduler::setBudget(std::string_view name, std::chrono::milliseconds budget) {
  for (auto& worker : workers_) {
    if (worker->name != name) continue;
    std::lock_guard lock(worker->mutex);
    worker->budget = budget;
    return true;
  }
  return false;
}

std::shared_ptr<Subsystem> TickScheduler::find(std::string_view name) const {
  for (const auto& worker : workers_)
    if (worker->name == name) return worker->subsystem;
  return nullptr;
}

TickReport TickScheduler::runTick(uint64_t tick, std::chrono::milliseconds interval) {
  TickReport report;
  report.tick = tick;
  report.startedAt = std::chrono::system_clock::now();
  auto tickStarted = Clock::now();
  report.subsystems.resize(workers_.size());
  std::vector<std::chrono::milliseconds> budgets(workers_.size());
  for (size_t i = 0; i < workers_.size(); ++i) {
    report.subsystems[i].name = workers_[i]->name;
    std::lock_guard lock(workers_[i]->mutex);
    budgets[i] = workers_[i]->budget;
  }

  for (Phase phase : kPhases) {
    for (size_t i = 0; i < workers_.size(); ++i) {
      Worker& worker = *workers_[i];
      SubsystemTick& entry = report.subsystems[i];
      if (entry.overran || entry.skipped || !worker.subsystem->runsIn(phase)) continue;

      std::unique_lock lock(worker.mutex);
      if (worker.running) {
        entry.skipped = true;  // still inside a phase that overran earlier
        continue;
      }
      auto remaining = duration_cast<microseconds>(budgets[i]) - entry.used;
      if (remaining <= microseconds(0)) {
        entry.overran = true;
        ++worker.overruns;
        continue;
      }
      auto started = Clock::now();
      worker.jobPhase = phase;
      worker.jobContext = TickContext{tick, tickStarted, interval, started + remaining};
      ++worker.jobSerial;
      worker.hasJob = true;
      worker.running = true;
      uint64_t serial = worker.jobSerial;
      worker.wake.notify_all();
      bool done = worker.wake.wait_until(lock, started + remaining,
                                         [&] { return worker.doneSerial == serial; });
      PhaseRun run;
      run.phase = phase;
      if (done) {
        run.finished = true;
        run.elapsed = worker.lastElapsed;
        run.error = worker.lastJobError;
        entry.used += run.elapsed;
      } else {
        run.elapsed = duration_cast<microseconds>(Clock::now() - started);
        entry.used += run.elapsed;
        entry.overran = true;
        ++worker.overruns;
        spdlog::warn(
            "event=subsystem_overrun subsystem={} phase={} tick={} budget_ms={} used_us={}",
            worker.name, phaseName(phase), tick, budgets[i].count(), entry.used.count());
      }
      entry.phases.push_back(std::move(run));
    }
  }

  for (size_t i = 0; i < workers_.size(); ++i) {
    Worker& worker = *workers_[i];
    SubsystemTick& entry = report.subsystems[i];
    std::lock_guard lock(worker.mutex);
    if (entry.skipped) continue;
    ++worker.ticks;
    bool failed = false;
    for (const auto& run : entry.phases) failed = failed || !run.error.empty();
    worker.failedLastTick = failed;
    worker.last = entry;
  }
  report.duration = duration_cast<microseconds>(Clock::now() - tickStarted);
  return report;
}

std::vector<SubsystemStatus> TickScheduler::status() const {
  std::vector<SubsystemStatus> out;
  for (const auto& worker : workers_) {
    SubsystemStatus s;
    s.name = worker->name;
    for (Phase phase : kPhases)
      if (worker->subsystem->runsIn(phase)) s.phases.push_back(phase);
    {
      std::lock_guard lock(worker->mutex);
      s.budget = worker->budget;
      s.ticks = worker->ticks;
      s.overruns = worker->overruns;
      s.failures = worker->failures;
      s.lastError = worker->lastError;
      s.last = worker->last;
      s.state = worker->running ? "overrun" : (worker->failedLastTick ? "failed" : "idle");
    }
    s.details = worker->subsystem->describe();
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<std::string> TickScheduler::stop(std::chrono::milliseconds timeout) {
  stopped_ = true;
  auto deadline = Clock::now() + timeout;
  std::vector<std::string> stuck;
  for (auto& worker : workers_) {
    {
      std::unique_lock lock(worker->mutex);
      worker->stopping = true;
      worker->wake.notify_all();
      worker->wake.wait_until(lock, deadline, [&] { return !worker->running; });
      if (worker->running) stuck.push_back(worker->name);
    }
    if (!worker->thread.joinable()) continue;
    if (std::find(stuck.begin(), stuck.end(), worker->name) != stuck.end())
      worker->thread.detach();
    else
      worker->thread.join();
  }
  return stuck;
}

}  // namespace Atoll
