#pragma once
// Hand-off between the two threads of a transfer pipeline: the thread that
// talks to the peer and the thread that does the rest (hashing, file writes
// or socket sends). Overlapping them keeps the socket busy while a block is
// checked or read, which a single thread on a loaded host cannot do.
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

// Runs steps in the order they were posted, on one thread of its own. After a
// step fails, the following steps still run with skip = true so that they can
// give back what they hold (buffers) without doing their work.
class SerialWorker {
 public:
  using Step = std::function<Result<void>(bool skip)>;
  // depth: most steps queued before post() waits. onFailure runs once, on the
  // worker thread, right after the first step fails (to wake a waiter).
  explicit SerialWorker(size_t depth, std::function<void()> onFailure = {});
  ~SerialWorker();
  SerialWorker(const SerialWorker&) = delete;
  SerialWorker& operator=(const SerialWorker&) = delete;

  // Queues a step; the error of an earlier step, if one failed already.
  Result<void> post(Step step);
  // Waits until every posted step ran; the first error, if any.
  Result<void> drain();
  bool failed() const;

 private:
  void loop();

  const size_t depth_;
  std::function<void()> onFailure_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Step> queue_;
  bool running_ = false;  // a step is executing
  bool stopping_ = false;
  bool failed_ = false;
  Error error_;
  std::thread thread_;
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
