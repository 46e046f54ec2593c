#include "migrate/transfer/Pipeline.h"

namespace Atoll::transfer {

SerialWorker::SerialWorker(StepThread where, size_t depth, std::function<void()> onFailure)
    : where_(where), depth_(depth == 0 ? 1 : depth), onFailure_(std::move(onFailure)) {
  if (where_ == StepThread::kOwn) thread_ = std::thread([this] { loop(); });
}

SerialWorker::~SerialWorker() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool SerialWorker::noteFailure(const Result<void>& result) {
  std::lock_guard lock(mutex_);
  if (result || failed_) return false;
  failed_ = true;
  error_ = result.error();
  return true;
}

void SerialWorker::loop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    changed_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and everything ran
    Step step = std::move(queue_.front());
    queue_.pop_front();
    running_ = true;
    bool skip = failed_;
    lock.unlock();
    changed_.notify_all();  // a poster may wait for room
    Result<void> result = step(skip);
    bool firstFailure = noteFailure(result);
    if (firstFailure && onFailure_) onFailure_();
    lock.lock();
    running_ = false;
    changed_.notify_all();
  }
}

Result<void> SerialWorker::post(Step step) {
  if (where_ == StepThread::kCaller) {
    if (failed()) {
      (void)step(true);  // nothing more runs for real; it gives back what it holds
      std::lock_guard lock(mutex_);
      return error_;
    }
    Result<void> result = step(false);
    if (noteFailure(result) && onFailure_) onFailure_();
    return result;
  }
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return failed_ || queue_.size() < depth_; });
  if (failed_) {
    // Nothing more runs for real; let the step give back what it holds.
    lock.unlock();
    (void)step(true);
    lock.lock();
    return error_;
  }
  queue_.push_back(std::move(step));
  lock.unlock();
  changed_.notify_all();
  return ok();
}

Result<void> SerialWorker::drain() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return queue_.empty() && !running_; });
  if (failed_) return error_;
  return ok();
}

bool SerialWorker::failed() const {
  std::lock_guard lock(mutex_);
  return failed_;
}

FreeBuffers::FreeBuffers(size_t count) {
  for (size_t i = count; i-- > 0;) free_.push_back(i);
}

std::optional<size_t> FreeBuffers::tryTake() {
  std::lock_guard lock(mutex_);
  if (free_.empty() || closed_) return std::nullopt;
  size_t buffer = free_.back();
  free_.pop_back();
  return buffer;
}

std::optional<size_t> FreeBuffers::take() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return closed_ || !free_.empty(); });
  if (closed_) return std::nullopt;
  size_t buffer = free_.back();
  free_.pop_back();
  return buffer;
}

void FreeBuffers::give(size_t buffer) {
  {
    std::lock_guard lock(mutex_);
    free_.push_back(buffer);
  }
  changed_.notify_all();
}

void FreeBuffers::close() {
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }
  changed_.notify_all();
}

size_t FreeBuffers::available() const {
  std::lock_guard lock(mutex_);
  return free_.size();
}

}  // namespace Atoll::transfer
