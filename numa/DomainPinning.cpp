#include "numa/DomainPinning.h"

#include "numa/CpuSet.h"

namespace Atoll::numa {

namespace {

Error rolledBack(Error error, const Result<void>& restored) {
  error.detail += error.detail.empty() ? "" : "; ";
  if (restored)
    error.detail += "the VM's previous pinning was restored";
  else
    error.detail += "restoring the previous pinning failed too: " + restored.error().message();
  return error;
}

}  // namespace

Result<void> restorePinning(VmPinner& pinner, const std::string& domain,
                            const DomainPinning& before) {
  Result<void> first;
  auto keep = [&](Result<void> step) {
    if (!step && first) first = std::move(step);
  };
  for (unsigned vcpu = 0; vcpu < before.vcpus.size(); ++vcpu)
    keep(pinner.pinVcpu(domain, vcpu, before.vcpus[vcpu]));
  keep(pinner.pinEmulator(domain, before.emulator));
  for (const auto& iothread : before.iothreads)
    keep(pinner.pinIothread(domain, iothread.id, iothread.cpus));
  if (!before.memoryNodes.empty()) keep(pinner.setMemoryNodes(domain, before.memoryNodes));
  return first;
}

Result<DomainPinChange> pinDomain(VmPinner& pinner, const std::string& domain, const CpuList& cpus,
                                  const CpuList& nodes) {
  if (cpus.empty()) return Error::invalid("pin VM", domain, "", "no CPUs to pin the VM to");
  if (nodes.empty()) return Error::invalid("pin VM", domain, "", "no memory nodes for the VM");
  auto before = pinner.pinning(domain);
  if (!before) return before.error();
  DomainPinChange change{domain, *before, *before};
  auto failed = [&](Error error) -> Result<DomainPinChange> {
    return rolledBack(std::move(error), restorePinning(pinner, domain, change.before));
  };
  for (unsigned vcpu = 0; vcpu < change.before.vcpus.size(); ++vcpu) {
    if (auto pinned = pinner.pinVcpu(domain, vcpu, cpus); !pinned) return failed(pinned.error());
    change.after.vcpus[vcpu] = cpus;
  }
  if (auto pinned = pinner.pinEmulator(domain, cpus); !pinned) return failed(pinned.error());
  change.after.emulator = cpus;
  for (auto& iothread : change.after.iothreads) {
    if (auto pinned = pinner.pinIothread(domain, iothread.id, cpus); !pinned)
      return failed(pinned.error());
    iothread.cpus = cpus;
  }
  // Last, because a nodeset libvirt did not have before cannot be taken back.
  if (change.before.memoryNodes != nodes) {
    if (auto placed = pinner.setMemoryNodes(domain, nodes); !placed) return failed(placed.error());
    change.after.memoryNodes = nodes;
  }
  // What the manager records now (it may add details, such as the mode).
  if (auto now = pinner.pinning(domain)) change.after = std::move(*now);
  return change;
}

Result<DomainPinChange> pinDomainToIsland(VmPinner& pinner, const Island& island,
                                          const std::string& domain) {
  auto change = pinDomain(pinner, domain, island.cpus, island.memNodes);
  if (!change) {
    Error error = change.error();
    error.detail = "pinning to island '" + island.name + "' (CPUs " + formatCpuList(island.cpus) +
                   ", nodes " + formatCpuList(island.memNodes) + "): " + error.detail;
    return error;
  }
  return change;
}

Result<std::vector<DomainPinChange>> pinDomainsToIsland(VmPinner& pinner, const Island& island,
                                                        const std::vector<std::string>& domains) {
  std::vector<DomainPinChange> changes;
  for (const auto& domain : domains) {
    auto change = pinDomainToIsland(pinner, island, domain);
    if (!change) {
      Error error = change.error();
      for (auto it = changes.rbegin(); it != changes.rend(); ++it) {
        if (auto restored = restorePinning(pinner, it->domain, it->before); !restored)
          error.detail +=
              "; restoring VM '" + it->domain + "' failed: " + restored.error().message();
      }
      if (!changes.empty()) error.detail += "; VMs pinned before it were restored";
      return error;
    }
    changes.push_back(std::move(*change));
  }
  return changes;
}

}  // namespace Atoll::numa
