#include "kernel-configs/NumaProbe.h"

#include <sys/syscall.h>
#include <unistd.h>

namespace Atoll::capability {

namespace {

constexpr const char* kFeature = "numa.topology";

bool kernelHasNumaPolicy() {
  int mode = 0;
  return ::syscall(SYS_get_mempolicy, &mode, nullptr, 0UL, nullptr, 0UL) == 0;
}

}  // namespace

Feature assessTopology(const Result<numa::Topology>& topology, bool numaSyscalls) {
  if (!topology)
    return Feature::absent(kFeature, true, topology.error().message(),
                           "Debian package libhwloc15; sysfs mounted at /sys");
  if (!numaSyscalls)
    return Feature::absent(kFeature, true,
                           topology->summary() + "; get_mempolicy(2) fails: no NUMA in the kernel",
                           "CONFIG_NUMA=y");
  std::string detail = topology->summary();
  if (topology->nodes().size() == 1)
    detail += " (single node: islands cannot be separated by memory node)";
  return Feature::ok(kFeature, true, detail);
}

Feature probeNumaTopology() {
  return assessTopology(numa::Topology::fromHost(), kernelHasNumaPolicy());
}

}  // namespace Atoll::capability
