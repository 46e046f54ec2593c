#pragma once
// NUMA probe: the host topology through hwloc, and whether the kernel has
// NUMA memory policy system calls (mbind, move_pages) at all.
#include "kernel-configs/Feature.h"
#include "numa/Topology.h"
#include "util/Result.h"

namespace Atoll::capability {

// numaSyscalls: get_mempolicy(2) works, i.e. the kernel has CONFIG_NUMA.
Feature assessTopology(const Result<numa::Topology>& topology, bool numaSyscalls);

Feature probeNumaTopology();

}  // namespace Atoll::capability
