#include "numa/BoundedVmPinner.h"

#include <fmt/format.h>

#include <condition_variable>
#include <exception>
#include <mutex>

#include "util/ThreadSignals.h"

namespace Atoll::numa {

// What the calling threads and the pinner's thread share. The pinner's
// thread holds it too, so a BoundedVmPinner destroyed while a call hangs
// leaves that thread a valid place to finish it.
struct BoundedVmPinner::Shared {
  using Clock = std::chrono::steady_clock;

  explicit Shared(Connect c) : connect(std::move(c)) {}

  Connect connect;
  std::unique_ptr<VmPinner> inner;  // the pinner's thread alone touches it
  std::mutex mutex;
  std::condition_variable changed;
  std::function<void()> task;  // set: a call waits for the thread
  bool busy = false;           // a call is queued or running
  bool stopping = false;
  Clock::time_point startedAt{};
  std::string running;  // the call in progress, for errors

  void serve() {
    // libvirt's client writes to its socket on this thread.
    blockSigpipeInThisThread();
    std::unique_lock lock(mutex);
    for (;;) {
      changed.wait(lock, [&] { return stopping || task; });
      if (!task) return;
      std::function<void()> call = std::move(task);
      task = nullptr;
      lock.unlock();
      call();
      lock.lock();
      busy = false;
      changed.notify_all();
    }
  }
};

BoundedVmPinner::BoundedVmPinner(Connect connect, std::chrono::milliseconds deadline,
                                 std::string what)
    : shared_(std::make_shared<Shared>(std::move(connect))),
      deadline_(deadline),
      what_(std::move(what)) {
  worker_ = std::thread([shared = shared_] { shared->serve(); });
}

BoundedVmPinner::~BoundedVmPinner() {
  bool idle = false;
  {
    std::lock_guard lock(shared_->mutex);
    shared_->stopping = true;
    idle = !shared_->busy;
    shared_->changed.notify_all();
  }
  if (idle) {
    worker_.join();
  } else {
    worker_.detach();
  }
}

template <typename T>
Result<T> BoundedVmPinner::run(std::string operation, std::string domain,
                               std::function<Result<T>(VmPinner&)> call) const {
  Shared& s = *shared_;
  auto answer = std::make_shared<std::optional<Result<T>>>();
  std::unique_lock lock(s.mutex);
  if (s.busy) {
    const double waited = std::chrono::duration<double>(Shared::Clock::now() - s.startedAt).count();
    return Error::invalid(operation, domain, "",
                          fmt::format("{} has not answered {} for {:.1f} s; nothing else is "
                                      "asked of it until it does",
                                      what_, s.running, waited));
  }
  s.busy = true;
  s.startedAt = Shared::Clock::now();
  s.running = domain.empty() ? operation : operation + " of '" + domain + "'";
  s.task = [shared = shared_, answer, call = std::move(call)] {
    Result<T> result = [&]() -> Result<T> {
      try {
        auto ready = [&]() -> Result<void> {
          if (shared->inner && !shared->inner->connected()) shared->inner.reset();
          if (!shared->inner) {
            auto connected = shared->connect();
            if (!connected) return connected.error();
            shared->inner = std::move(*connected);
          }
          return ok();
        };
        if (auto made = ready(); !made) return made.error();
        Result<T> first = call(*shared->inner);
        if (first || shared->inner->connected()) return first;
        // The manager closed the connection (libvirtd restarted): the call
        // failed on the dead connection, and is made once more on a new
        // one. Every call here reads, or sets what is already desired.
        shared->inner.reset();
        if (auto made = ready(); !made) return made.error();
        return call(*shared->inner);
      } catch (const std::exception& e) {
        return Error::invalid("call", "", "", e.what());
      }
    }();
    std::lock_guard done(shared->mutex);
    answer->emplace(std::move(result));
  };
  s.changed.notify_all();
  if (!s.changed.wait_for(lock, deadline_, [&] { return answer->has_value(); }))
    return Error::invalid(
        operation, domain, "",
        fmt::format("{} has not answered within {:.1f} s; the call goes on, and may still take "
                    "effect",
                    what_, std::chrono::duration<double>(deadline_).count()));
  return std::move(**answer);
}

Result<void> BoundedVmPinner::connect() const {
  return run<void>("connect", "", [](VmPinner&) { return ok(); });
}

Result<std::vector<std::string>> BoundedVmPinner::runningDomains() const {
  return run<std::vector<std::string>>("list running domains", "",
                                       [](VmPinner& p) { return p.runningDomains(); });
}

Result<std::optional<std::string>> BoundedVmPinner::metadata(const std::string& domain,
                                                             const std::string& uri) const {
  return run<std::optional<std::string>>(
      "read metadata", domain, [domain, uri](VmPinner& p) { return p.metadata(domain, uri); });
}

Result<DomainPinning> BoundedVmPinner::pinning(const std::string& domain) const {
  return run<DomainPinning>("read pinning", domain,
                            [domain](VmPinner& p) { return p.pinning(domain); });
}

Result<void> BoundedVmPinner::pinVcpu(const std::string& domain, unsigned vcpu,
                                      const CpuList& cpus) {
  return run<void>("pin vCPU " + std::to_string(vcpu), domain,
                   [domain, vcpu, cpus](VmPinner& p) { return p.pinVcpu(domain, vcpu, cpus); });
}

Result<void> BoundedVmPinner::pinEmulator(const std::string& domain, const CpuList& cpus) {
  return run<void>("pin emulator", domain,
                   [domain, cpus](VmPinner& p) { return p.pinEmulator(domain, cpus); });
}

Result<void> BoundedVmPinner::pinIothread(const std::string& domain, unsigned id,
                                          const CpuList& cpus) {
  return run<void>("pin I/O thread " + std::to_string(id), domain,
                   [domain, id, cpus](VmPinner& p) { return p.pinIothread(domain, id, cpus); });
}

Result<void> BoundedVmPinner::setMemoryNodes(const std::string& domain, const CpuList& nodes) {
  return run<void>("set memory nodes", domain,
                   [domain, nodes](VmPinner& p) { return p.setMemoryNodes(domain, nodes); });
}

}  // namespace Atoll::numa
