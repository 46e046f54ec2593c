#include "util/DeadlineWorker.h"

#include <condition_variable>
#include <mutex>

#include "util/ThreadSignals.h"

namespace Atoll {

// Shared with the thread, so that a worker destroyed while a call hangs
// leaves that thread a valid place to report its end.
struct DeadlineWorker::State {
  std::mutex mutex;
  std::condition_variable changed;
  std::function<void()> task;  // set: handed over, not yet taken
  std::string what;
  Clock::time_point startedAt{};
  uint64_t started = 0;   // calls handed over
  uint64_t finished = 0;  // calls returned
  bool stopping = false;

  void serve() {
    blockSigpipeInThisThread();
    std::unique_lock lock(mutex);
    for (;;) {
      changed.wait(lock, [&] { return stopping || task; });
      if (!task) return;
      std::function<void()> call = std::move(task);
      task = nullptr;
      lock.unlock();
      call();
      // Its captures go before the call counts as returned: a caller that
      // saw it return may rely on them being released.
      call = nullptr;
      lock.lock();
      ++finished;
      changed.notify_all();
    }
  }
};

DeadlineWorker::DeadlineWorker() : state_(std::make_shared<State>()) {
  thread_ = std::thread([state = state_] { state->serve(); });
}

DeadlineWorker::~DeadlineWorker() {
  bool idle = false;
  {
    std::lock_guard lock(state_->mutex);
    state_->stopping = true;
    idle = state_->started == state_->finished;
    state_->changed.notify_all();
  }
  // An idle thread ends at once: joining it leaves nothing running behind a
  // stopped daemon. A busy one ends when its call returns.
  if (idle) {
    thread_.join();
  } else {
    thread_.detach();
  }
}

std::variant<uint64_t, DeadlineWorker::Busy> DeadlineWorker::start(std::string what,
                                                                   std::function<void()> call) {
  State& s = *state_;
  std::lock_guard lock(s.mutex);
  if (s.started != s.finished) return Busy{s.what, Clock::now() - s.startedAt};
  s.task = std::move(call);
  s.what = std::move(what);
  s.startedAt = Clock::now();
  ++s.started;
  s.changed.notify_all();
  return s.started;
}

bool DeadlineWorker::waitFor(uint64_t call, std::chrono::milliseconds deadline) {
  State& s = *state_;
  std::unique_lock lock(s.mutex);
  return s.changed.wait_for(lock, deadline, [&] { return s.finished >= call; });
}

}  // namespace Atoll
