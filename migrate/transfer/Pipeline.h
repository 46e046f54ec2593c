#pragma once
// Hand-off between the steps of a transfer side: the thread that talks to the
// peer and the steps that do the rest (hashing, file writes or socket sends).
// By default those steps run in place, on the calling thread: each block is
// then received, checked and written (or read, hashed and sent) by one thread
// while it is still in that CPU's caches, and a side keeps to one CPU wherever
// the scheduler puts it. On a thread of their own they overlap with the
// peer's socket work, which pays only where one CPU per side is what limits
// the transfer and a second CPU shares its caches; on the build host it was
// slower unplaced and no faster placed (bench/RESULTS.md, "One thread per
// side").
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "util/Result.h"

namespace Atoll::transfer {

// Where a SerialWorker runs its steps.
enum class StepThread {
  kCaller,  // in post(), before it returns
  kOwn,     // on a thread of the worker's own, while the caller goes on
};

// Runs steps in the order they were posted. After a step fails, the following
// steps still run with skip = true so that they can give back what they hold
// (buffers) without doing their work.
class SerialWorker {
 public:
  using Step = std::function<Result<void>(bool skip)>;
  // depth: most steps queued before post() waits (kOwn). onFailure runs
  // once, right after the first step fails (to wake a waiter), on the thread
  // that ran the step.
  SerialWorker(StepThread where, size_t depth, std::function<void()> onFailure = {});
  ~SerialWorker();
  SerialWorker(const SerialWorker&) = delete;
  SerialWorker& operator=(const SerialWorker&) = delete;

  // Runs or queues a step; the error of an earlier step, if one failed
  // already (kCaller: also of this one).
  Result<void> post(Step step);
  // Waits until every posted step ran; the first error, if any.
  Result<void> drain();
  bool failed() const;

 private:
  void loop();
  // Records the first failure; true when `result` is it.
  bool noteFailure(const Result<void>& result);

  const StepThread where_;
  const size_t depth_;
  std::function<void()> onFailure_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Step> queue_;
  bool running_ = false;  // a step is executing
  bool stopping_ = false;
  bool failed_ = false;
  Error error_;
  std::thread thread_;  // kOwn only
};

// Indices of free buffers: taken on one thread, given back from any.
class FreeBuffers {
 public:
  explicit FreeBuffers(size_t count);
  std::optional<size_t> tryTake();
  // Waits for a buffer; nullopt once close() was called.
  std::optional<size_t> take();
  void give(size_t buffer);
  // Wakes every waiter for good (the pipeline failed).
  void close();
  size_t available() const;

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<size_t> free_;
  bool closed_ = false;
};

}  // namespace Atoll::transfer
