#pragma once
// Holds the threads that wait at it until released. Tests share it through a
// shared_ptr with threads that may outlive them (a call left hanging on
// purpose), so that releasing it later is always safe.
#include <condition_variable>
#include <mutex>

namespace Atoll::test {

class ThreadGate {
 public:
  void release() {
    std::lock_guard lock(mutex_);
    open_ = true;
    opened_.notify_all();
  }
  void wait() {
    std::unique_lock lock(mutex_);
    opened_.wait(lock, [&] { return open_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable opened_;
  bool open_ = false;
};

}  // namespace Atoll::test
