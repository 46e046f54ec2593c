#pragma once
// A VmPinner whose calls each wait at most a deadline for the pinner it
// wraps. libvirt's client calls have no deadline of their own: a libvirtd
// that hangs (stopped, deadlocked, or a main loop stuck behind a QEMU
// monitor) holds its caller for as long as it hangs, and the caller here is
// the daemon's tick. The wrapped pinner is connected and called on a thread
// of its own (a DeadlineWorker); a call that passes the deadline is reported
// as an error and left to finish there, and until it does every further call
// fails at once rather than queue behind it. A late call may still take effect: the
// islands above reconcile from what they read each tick, so a pin that
// lands late is simply found in place. A connection the manager closed (a
// libvirtd that restarted) is replaced, and the call that found it closed
// is made again on the new one.
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "numa/VmPinner.h"
#include "util/DeadlineWorker.h"
#include "util/Result.h"

namespace Atoll::numa {

class BoundedVmPinner final : public VmPinner {
 public:
  using Connect = std::function<Result<std::unique_ptr<VmPinner>>()>;

  // `connect` runs on the pinner's thread at the first call, and again at
  // the next call after it failed. `what` names the manager in errors
  // ("libvirt").
  BoundedVmPinner(Connect connect, std::chrono::milliseconds deadline, std::string what);
  // Joins the thread when it is idle; one still inside a call is left to
  // finish on its own.
  ~BoundedVmPinner() override = default;
  BoundedVmPinner(const BoundedVmPinner&) = delete;
  BoundedVmPinner& operator=(const BoundedVmPinner&) = delete;

  // Connects unless connected, within the deadline: whether the manager
  // can be reached at all, before any call that needs it.
  Result<void> connect() const;

  Result<std::vector<std::string>> runningDomains() const override;
  Result<std::optional<std::string>> metadata(const std::string& domain,
                                              const std::string& uri) const override;
  Result<DomainPinning> pinning(const std::string& domain) const override;
  Result<void> pinVcpu(const std::string& domain, unsigned vcpu, const CpuList& cpus) override;
  Result<void> pinEmulator(const std::string& domain, const CpuList& cpus) override;
  Result<void> pinIothread(const std::string& domain, unsigned id, const CpuList& cpus) override;
  Result<void> setMemoryNodes(const std::string& domain, const CpuList& nodes) override;

 private:
  struct Connection;
  // Runs `call` on the pinner's thread; `operation` and `domain` name it in
  // errors.
  template <typename T>
  Result<T> run(std::string operation, std::string domain,
                std::function<Result<T>(VmPinner&)> call) const;

  // The worker's calls alone touch it; they hold it too, so a call left
  // hanging outlives this pinner safely.
  std::shared_ptr<Connection> connection_;
  std::chrono::milliseconds deadline_;
  std::string what_;
  // Declared last, so destroyed first: an idle thread is joined before the
  // rest goes.
  mutable DeadlineWorker worker_;
};

}  // namespace Atoll::numa
