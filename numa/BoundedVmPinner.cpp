#include "numa/BoundedVmPinner.h"

#include <fmt/format.h>

#include <exception>

namespace Atoll::numa {

// The wrapped pinner and how to make it.
struct BoundedVmPinner::Connection {
  explicit Connection(Connect c) : connect(std::move(c)) {}

  // Connects unless connected; a connection the manager closed is replaced.
  Result<void> ready() {
    if (inner && !inner->connected()) inner.reset();
    if (!inner) {
      auto connected = connect();
      if (!connected) return connected.error();
      inner = std::move(*connected);
    }
    return ok();
  }

  Connect connect;
  std::unique_ptr<VmPinner> inner;
};

BoundedVmPinner::BoundedVmPinner(Connect connect, std::chrono::milliseconds deadline,
                                 std::string what)
    : connection_(std::make_shared<Connection>(std::move(connect))),
      deadline_(deadline),
      what_(std::move(what)) {}

template <typename T>
Result<T> BoundedVmPinner::run(std::string operation, std::string domain,
                               std::function<Result<T>(VmPinner&)> call) const {
  // Written by the worker's thread before the call counts as returned, read
  // here only after waitFor saw it return.
  auto answer = std::make_shared<std::optional<Result<T>>>();
  auto task = [connection = connection_, answer, call = std::move(call)] {
    answer->emplace([&]() -> Result<T> {
      try {
        if (auto made = connection->ready(); !made) return made.error();
        Result<T> first = call(*connection->inner);
        if (first || connection->inner->connected()) return first;
        // The manager closed the connection (libvirtd restarted): the call
        // failed on the dead connection, and is made once more on a new
        // one. Every call here reads, or sets what is already desired.
        connection->inner.reset();
        if (auto made = connection->ready(); !made) return made.error();
        return call(*connection->inner);
      } catch (const std::exception& e) {
        return Error::invalid("call", "", "", e.what());
      }
    }());
  };
  auto started = worker_.start(domain.empty() ? operation : operation + " of '" + domain + "'",
                               std::move(task));
  if (const auto* busy = std::get_if<DeadlineWorker::Busy>(&started))
    return Error::invalid(
        operation, domain, "",
        fmt::format("{} has not answered {} for {:.1f} s; nothing else is "
                    "asked of it until it does",
                    what_, busy->what, std::chrono::duration<double>(busy->waited).count()));
  if (!worker_.waitFor(std::get<uint64_t>(started), deadline_))
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
