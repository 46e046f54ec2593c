#pragma once
// A VmPinner holding domains in memory, for the island logic above libvirt:
// it enforces what libvirt enforces that matters here (unknown domains,
// CPUs and nodes that exist) and can be told to fail a given call, so
// rollback paths run. LibvirtPinner itself is tested on a real libvirtd.
#include <map>
#include <optional>
#include <string>

#include "numa/CpuSet.h"
#include "numa/VmPinner.h"

namespace Atoll::numa::testing {

class InMemoryVmPinner final : public VmPinner {
 public:
  InMemoryVmPinner(unsigned hostCpus, unsigned hostNodes) {
    for (unsigned cpu = 0; cpu < hostCpus; ++cpu) allCpus_.push_back(cpu);
    for (unsigned node = 0; node < hostNodes; ++node) allNodes_.push_back(node);
  }

  // A running domain with `vcpus` vCPUs and I/O threads 1..iothreads, every
  // thread allowed on every CPU and no memory nodeset.
  void addDomain(const std::string& name, unsigned vcpus, unsigned iothreads,
                 std::map<std::string, std::string> metadata = {}) {
    DomainPinning pinning;
    pinning.vcpus.assign(vcpus, allCpus_);
    pinning.emulator = allCpus_;
    for (unsigned id = 1; id <= iothreads; ++id) pinning.iothreads.push_back({id, allCpus_});
    pinning.memoryMode = "strict";
    domains_[name] = {pinning, std::move(metadata)};
  }
  // The nth change from now on (0: the next) fails with EINVAL.
  void failChange(unsigned nth) { failAt_ = changes_ + nth; }
  unsigned changes() const { return changes_; }
  const DomainPinning& state(const std::string& name) const { return domains_.at(name).pinning; }

  Result<std::vector<std::string>> runningDomains() const override {
    std::vector<std::string> names;
    for (const auto& [name, domain] : domains_) names.push_back(name);
    return names;
  }
  Result<std::optional<std::string>> metadata(const std::string& domain,
                                              const std::string& uri) const override {
    auto found = domains_.find(domain);
    if (found == domains_.end()) return unknown(domain);
    auto element = found->second.metadata.find(uri);
    if (element == found->second.metadata.end()) return std::optional<std::string>();
    return std::optional<std::string>(element->second);
  }
  Result<DomainPinning> pinning(const std::string& domain) const override {
    auto found = domains_.find(domain);
    if (found == domains_.end()) return unknown(domain);
    return found->second.pinning;
  }
  Result<void> pinVcpu(const std::string& domain, unsigned vcpu, const CpuList& cpus) override {
    return change(domain, cpus, allCpus_, [&](DomainPinning& pinning) -> Result<void> {
      if (vcpu >= pinning.vcpus.size())
        return Error::invalid("pinVcpu", domain, std::to_string(vcpu), "no such vCPU");
      pinning.vcpus[vcpu] = cpus;
      return ok();
    });
  }
  Result<void> pinEmulator(const std::string& domain, const CpuList& cpus) override {
    return change(domain, cpus, allCpus_, [&](DomainPinning& pinning) -> Result<void> {
      pinning.emulator = cpus;
      return ok();
    });
  }
  Result<void> pinIothread(const std::string& domain, unsigned id, const CpuList& cpus) override {
    return change(domain, cpus, allCpus_, [&](DomainPinning& pinning) -> Result<void> {
      for (auto& iothread : pinning.iothreads) {
        if (iothread.id != id) continue;
        iothread.cpus = cpus;
        return ok();
      }
      return Error::invalid("pinIothread", domain, std::to_string(id), "no such I/O thread");
    });
  }
  Result<void> setMemoryNodes(const std::string& domain, const CpuList& nodes) override {
    return change(domain, nodes, allNodes_, [&](DomainPinning& pinning) -> Result<void> {
      // As libvirt: a first nodeset comes with restrictive mode; a running
      // domain in another mode keeps its nodeset.
      if (pinning.memoryNodes.empty())
        pinning.memoryMode = "restrictive";
      else if (pinning.memoryMode != "restrictive")
        return Error::invalid("setMemoryNodes", domain, formatCpuList(nodes),
                              "change of nodeset for running domain requires restrictive mode");
      pinning.memoryNodes = nodes;
      return ok();
    });
  }

 private:
  struct Domain {
    DomainPinning pinning;
    std::map<std::string, std::string> metadata;
  };

  static Error unknown(const std::string& domain) {
    return Error::invalid("pin VM", domain, domain, "no such libvirt domain");
  }

  template <typename Apply>
  Result<void> change(const std::string& domain, const CpuList& values, const CpuList& valid,
                      Apply apply) {
    auto found = domains_.find(domain);
    if (found == domains_.end()) return unknown(domain);
    const unsigned index = changes_++;
    if (failAt_ && *failAt_ == index)
      return Error::fromErrno("change", domain, EINVAL, formatCpuList(values));
    if (values.empty() || !differenceOf(values, valid).empty())
      return Error::invalid("change", domain, formatCpuList(values), "not on this host");
    return apply(found->second.pinning);
  }

  CpuList allCpus_;
  CpuList allNodes_;
  std::map<std::string, Domain> domains_;
  unsigned changes_ = 0;
  std::optional<unsigned> failAt_;
};

}  // namespace Atoll::numa::testing
