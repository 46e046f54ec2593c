#pragma once
// libvirt domains as workloads: name and UUID from libvirt's API, the cgroup
// from the QEMU process's /proc/PID/cgroup. libvirt may not be running; that
// is an error value the collector logs once, and selectors keep working.
#include <string>
#include <string_view>
#include <vector>

#include "util/Result.h"

namespace Atoll::telemetry {

struct LibvirtDomain {
  std::string name;
  std::string uuid;
  int pid = 0;             // QEMU process
  std::string cgroupPath;  // relative to the cgroup2 mount, the domain's scope
};

// The cgroup2 path ("0::" line) of a /proc/PID/cgroup text, without the
// leading '/'; empty when the process has no cgroup2 membership.
std::string unifiedCgroupPath(std::string_view procCgroupText);
// libvirt places QEMU itself in <scope>/libvirt/emulator (or <scope>/emulator)
// on cgroup v2; the domain's workload is the scope, which also holds vcpuN.
std::string domainScopeOf(std::string_view emulatorCgroupPath);

// Active domains on `uri` (read-only connection).
Result<std::vector<LibvirtDomain>> listLibvirtDomains(const std::string& uri);

}  // namespace Atoll::telemetry
