#pragma once
// Runs every capability probe against the running host and collects the
// report `atoll check` prints.
#include <array>
#include <chrono>
#include <string>
#include <string_view>

#include "kernel-configs/LibvirtProbe.h"
#include "kernel-configs/Report.h"

namespace Atoll::capability {

// Every feature a report holds, in report order. Names are stable: scripts
// and tests key on them.
inline constexpr std::array<std::string_view, 17> kFeatureNames = {
    "btf",           "bpf.tp_btf",       "bpf.ringbuf",          "bpf.cgroup_skb",
    "bpf.iter_task", "cgroup2.mount",    "cgroup2.controllers",  "cgroup2.cpuset_partition",
    "io_uring",      "io_uring.opcodes", "userfaultfd.wp_async", "pagemap_scan",
    "soft_dirty",    "kernel_tls",       "numa.topology",        "libvirt",
    "kernel_config",
};

struct CheckOptions {
  std::string mountInfoPath = "/proc/self/mountinfo";
  std::string libvirtUri = kDefaultLibvirtUri;
  std::chrono::milliseconds libvirtTimeout = kDefaultLibvirtTimeout;
};

// uname -r
std::string kernelRelease();

Report runCapabilityCheck(const CheckOptions& options = {});

}  // namespace Atoll::capability
