#include "bpf/collector/LibvirtDomainWatch.h"

#include <condition_variable>
#include <mutex>
#include <thread>

#include "util/ThreadSignals.h"

namespace Atoll::telemetry {

// What the asking thread and the listing thread share. The listing thread
// holds it too, so a watch destroyed while libvirt has not answered leaves
// that thread a valid place to put the answer nobody will read.
struct LibvirtDomainWatch::Shared {
  using Clock = std::chrono::steady_clock;

  explicit Shared(Lister l) : lister(std::move(l)) {}

  Lister lister;
  std::mutex mutex;
  std::condition_variable changed;
  bool stopping = false;
  uint64_t requested = 0;
  uint64_t answered = 0;
  Clock::time_point requestedAt{};
  // The answer to request number `answered`.
  std::optional<Result<std::vector<LibvirtDomain>>> lastAnswer;
  // The last list libvirt gave, for answers that come late.
  std::optional<std::vector<LibvirtDomain>> lastList;
  Clock::time_point lastListAt{};

  void serve() {
    // libvirt's client writes to its socket on this thread.
    blockSigpipeInThisThread();
    std::unique_lock lock(mutex);
    for (;;) {
      changed.wait(lock, [&] { return stopping || requested > answered; });
      if (stopping) return;
      const uint64_t serving = requested;
      lock.unlock();
      Result<std::vector<LibvirtDomain>> result = lister();
      lock.lock();
      if (result) {
        lastList = *result;
        lastListAt = Clock::now();
      }
      lastAnswer.emplace(std::move(result));
      answered = serving;
      changed.notify_all();
    }
  }
};

LibvirtDomainWatch::LibvirtDomainWatch(const std::string& uri)
    : LibvirtDomainWatch(Lister([uri] { return listLibvirtDomains(uri); })) {}

LibvirtDomainWatch::LibvirtDomainWatch(Lister lister)
    : shared_(std::make_shared<Shared>(std::move(lister))) {
  worker_ = std::thread([shared = shared_] { shared->serve(); });
}

LibvirtDomainWatch::~LibvirtDomainWatch() {
  bool idle = false;
  {
    std::lock_guard lock(shared_->mutex);
    shared_->stopping = true;
    idle = shared_->requested == shared_->answered;
    shared_->changed.notify_all();
  }
  // An idle thread is waiting for work and ends at once: joining it leaves
  // nothing running behind a stopped daemon. One still inside libvirt keeps
  // `shared_` and ends when libvirt answers.
  if (idle) {
    worker_.join();
  } else {
    worker_.detach();
  }
}

LibvirtAnswer LibvirtDomainWatch::refresh(std::chrono::milliseconds deadline) {
  Shared& s = *shared_;
  std::unique_lock lock(s.mutex);
  const auto now = Shared::Clock::now();
  // A request libvirt left unanswered past an earlier deadline is not waited
  // for again: every discovery would lose its whole deadline to a libvirtd
  // that hangs.
  const bool outstanding = s.requested != s.answered;
  if (!outstanding) {
    ++s.requested;
    s.requestedAt = now;
    s.changed.notify_all();
  }
  const uint64_t wanted = s.requested;
  const auto wait = outstanding ? std::chrono::milliseconds(0) : deadline;
  LibvirtAnswer answer;
  if (s.changed.wait_for(lock, wait, [&] { return s.answered >= wanted; })) {
    const Result<std::vector<LibvirtDomain>>& result = *s.lastAnswer;
    if (result) {
      answer.kind = LibvirtAnswer::Kind::kListed;
      answer.domains = *result;
    } else {
      answer.kind = LibvirtAnswer::Kind::kFailed;
      answer.error = result.error();
    }
    return answer;
  }
  answer.kind = LibvirtAnswer::Kind::kLate;
  answer.waiting = Shared::Clock::now() - s.requestedAt;
  if (s.lastList) {
    answer.hasEarlierList = true;
    answer.domains = *s.lastList;
    answer.listAge = Shared::Clock::now() - s.lastListAt;
  }
  return answer;
}

}  // namespace Atoll::telemetry
