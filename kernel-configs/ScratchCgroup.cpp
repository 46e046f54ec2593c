#include "kernel-configs/ScratchCgroup.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <thread>

namespace Atoll::capability {

namespace {

std::atomic<unsigned> nextScratchNumber{0};

// A cgroup whose last task just exited can stay busy for a moment while the
// kernel finishes tearing the task down.
constexpr int kRemoveAttempts = 50;
constexpr auto kRemoveRetryDelay = std::chrono::milliseconds(10);

}  // namespace

Result<ScratchCgroup> ScratchCgroup::create(const std::string& parentPath) {
  auto parent = Dir::open(parentPath);
  if (!parent) return parent.error();
  std::string name = std::string(kScratchCgroupPrefix) + std::to_string(::getpid()) + "-" +
                     std::to_string(nextScratchNumber++);
  if (auto made = parent->makeChild(name); !made) return made.error();
  auto dir = parent->openChild(name);
  if (!dir) {
    (void)parent->removeChild(name);
    return dir.error();
  }
  return ScratchCgroup(std::move(*parent), std::move(*dir), std::move(name));
}

ScratchCgroup::ScratchCgroup(ScratchCgroup&& other) noexcept
    : parent_(std::move(other.parent_)),
      dir_(std::move(other.dir_)),
      name_(std::move(other.name_)),
      removed_(std::exchange(other.removed_, true)) {}

Result<void> ScratchCgroup::remove() {
  if (removed_) return ok();
  Result<void> result;
  for (int attempt = 0; attempt < kRemoveAttempts; ++attempt) {
    result = parent_.removeChild(name_);
    if (result || result.error().errnum != EBUSY) break;
    std::this_thread::sleep_for(kRemoveRetryDelay);
  }
  if (result) removed_ = true;
  return result;
}

ScratchCgroup::~ScratchCgroup() {
  (void)remove();
}

}  // namespace Atoll::capability
