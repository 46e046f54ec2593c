#pragma once
// Places islands on the topology. Rules, in order: whole cores only (SMT
// siblings never end up in two islands); inside one L3 domain when the
// island fits there, else inside one NUMA node, else across the fewest and
// nearest nodes by distance. Among equal choices the tightest fit wins, so
// large free domains stay whole for later islands, then the lowest CPU
// number. The same topology and claims always give the same answer.
#include <string>

#include "numa/Topology.h"
#include "util/Result.h"

namespace Atoll::numa {

struct Placement {
  CpuList cpus;   // whole cores, so possibly more than asked for
  CpuList nodes;  // NUMA nodes its CPUs sit on
};

class IslandAllocator {
 public:
  // `claimed`: CPUs other islands hold; only cores entirely free are used,
  // and at least one free core is always left to the shared island.
  IslandAllocator(const Topology& topology, CpuList claimed);

  // At least `cpuCount` CPUs for a new island, on `allowedNodes` only when
  // that is not empty.
  Result<Placement> place(const std::string& island, unsigned cpuCount,
                          const CpuList& allowedNodes = {}) const;
  // `current` plus at least `extraCpus` more, nearest to where it is.
  Result<Placement> grow(const std::string& island, const CpuList& current,
                         unsigned extraCpus) const;
  // `current` less at least `fewerCpus`, whole cores from its outskirts
  // (the L3 domains and nodes where it holds least) so what stays is compact.
  Result<Placement> shrink(const std::string& island, const CpuList& current,
                           unsigned fewerCpus) const;

 private:
  struct FreeCore {
    std::size_t core;  // index in topology.cores()
    unsigned node;
    std::size_t l3;  // index in topology.l3Domains(), or SIZE_MAX
  };
  std::vector<FreeCore> freeCores(const CpuList& allowedNodes) const;
  Placement finish(CpuList cpus) const;
  std::size_t l3Of(const Core& core) const;

  const Topology& topology_;
  CpuList claimed_;
};

}  // namespace Atoll::numa
