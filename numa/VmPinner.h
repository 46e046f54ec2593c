#pragma once
// Where a virtual machine's threads and memory may run, as its hypervisor
// manager records it, and the operations that change it. Islands pin
// libvirt-managed VMs through this interface (LibvirtPinner) so that the
// manager's own view and the domain's live XML stay true; the island logic
// above it (DomainPinning) is tested against an in-memory implementation.
#include <string>
#include <utility>
#include <vector>

#include "numa/Topology.h"
#include "util/Result.h"

namespace Atoll::numa {

struct IothreadPin {
  unsigned id = 0;  // libvirt's I/O thread id (from 1)
  CpuList cpus;

  bool operator==(const IothreadPin&) const = default;
};

struct DomainPinning {
  std::vector<CpuList> vcpus;  // by vCPU number
  CpuList emulator;            // the emulator threads (QEMU main loop, monitor, workers)
  std::vector<IothreadPin> iothreads;
  CpuList memoryNodes;     // numatune nodeset; empty when the domain has none
  std::string memoryMode;  // numatune mode ("strict", "preferred", ...), may be empty

  bool operator==(const DomainPinning&) const = default;
};

class VmPinner {
 public:
  virtual ~VmPinner() = default;

  // Names of the running domains.
  virtual Result<std::vector<std::string>> runningDomains() const = 0;
  // The text content of the domain's metadata element in namespace `uri`;
  // empty optional when the domain has no such element.
  virtual Result<std::optional<std::string>> metadata(const std::string& domain,
                                                      const std::string& uri) const = 0;
  // The domain's current pinning; an unknown domain is an error naming it.
  virtual Result<DomainPinning> pinning(const std::string& domain) const = 0;

  virtual Result<void> pinVcpu(const std::string& domain, unsigned vcpu, const CpuList& cpus) = 0;
  virtual Result<void> pinEmulator(const std::string& domain, const CpuList& cpus) = 0;
  virtual Result<void> pinIothread(const std::string& domain, unsigned id, const CpuList& cpus) = 0;
  // The numatune nodeset; the kernel moves the guest's memory there. A
  // domain without one gets mode "restrictive" with it, so later changes
  // can move its memory while it runs.
  virtual Result<void> setMemoryNodes(const std::string& domain, const CpuList& nodes) = 0;

  // False once the manager has closed the connection (libvirtd stopped or
  // restarted): no call on it can succeed again, and a new connection is
  // needed.
  virtual bool connected() const { return true; }
};

}  // namespace Atoll::numa
