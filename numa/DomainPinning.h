#pragma once
// Puts a libvirt-managed VM on an island: every vCPU, the emulator threads
// and every I/O thread on the island's CPUs, the guest memory (numatune
// nodeset) on its memory nodes. The VM's cgroup is left where libvirt put
// it; libvirt applies the pinning so its live XML stays true. Unpinning is
// pinning to the shared island. A change that fails half-way puts back the
// pinning the VM had, so a failed pin changes nothing.
#include <string>
#include <vector>

#include "numa/Island.h"
#include "numa/VmPinner.h"

namespace Atoll::numa {

struct DomainPinChange {
  std::string domain;
  DomainPinning before;
  DomainPinning after;
};

// `cpus` and `nodes` must not be empty.
Result<DomainPinChange> pinDomain(VmPinner& pinner, const std::string& domain, const CpuList& cpus,
                                  const CpuList& nodes);
Result<DomainPinChange> pinDomainToIsland(VmPinner& pinner, const Island& island,
                                          const std::string& domain);
// All the domains or none: a failure restores those already pinned.
Result<std::vector<DomainPinChange>> pinDomainsToIsland(VmPinner& pinner, const Island& island,
                                                        const std::vector<std::string>& domains);
// Puts back a pinning recorded before a change. Memory nodes are restored
// only when the domain had a nodeset (libvirt cannot remove one).
Result<void> restorePinning(VmPinner& pinner, const std::string& domain,
                            const DomainPinning& before);

}  // namespace Atoll::numa
