#include "kernel-configs/CapabilityCheck.h"

#include <sys/utsname.h>

#include <optional>

#include "kernel-configs/BpfProbes.h"
#include "kernel-configs/BtfProbe.h"
#include "kernel-configs/CgroupProbes.h"
#include "kernel-configs/DirtyPageProbes.h"
#include "kernel-configs/IoUringProbe.h"
#include "kernel-configs/KernelConfigProbe.h"
#include "kernel-configs/KernelTlsProbe.h"
#include "kernel-configs/NumaProbe.h"

namespace Atoll::capability {

std::string kernelRelease() {
  utsname uts{};
  if (::uname(&uts) != 0) return "unknown";
  return uts.release;
}

Report runCapabilityCheck(const CheckOptions& options) {
  Report report;
  report.kernel = kernelRelease();
  auto add = [&](Feature feature) { report.features.push_back(std::move(feature)); };
  auto addAll = [&](std::vector<Feature> features) {
    for (auto& feature : features) add(std::move(feature));
  };

  auto cgroup2 = locateCgroup2(options.mountInfoPath);
  std::optional<std::string> cgroup2Path;
  if (cgroup2) cgroup2Path = cgroup2->path;

  add(probeBtf());
  addAll(probeBpfPrograms(cgroup2Path));
  add(assessCgroup2Mount(cgroup2));
  add(probeControllers(cgroup2));
  add(probeCpusetPartition(cgroup2));
  addAll(probeIoUring());
  addAll(probeWriteProtectTracking());
  add(probeSoftDirty());
  add(probeKernelTls());
  add(probeNumaTopology());
  add(probeLibvirt(options.libvirtUri, options.libvirtTimeout));
  add(probeKernelConfig(report.kernel));
  return report;
}

}  // namespace Atoll::capability
