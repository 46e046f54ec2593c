#pragma once
// libvirt probe: a read-only connection to the system QEMU driver. It runs in
// a child process with a deadline, so a daemon that accepts but never
// answers cannot hang the check.
#include <chrono>
#include <string>

#include "kernel-configs/Feature.h"

namespace Atoll::capability {

inline constexpr const char* kDefaultLibvirtUri = "qemu:///system";
inline constexpr std::chrono::milliseconds kDefaultLibvirtTimeout{3000};

Feature probeLibvirt(const std::string& uri = kDefaultLibvirtUri,
                     std::chrono::milliseconds timeout = kDefaultLibvirtTimeout);

}  // namespace Atoll::capability
