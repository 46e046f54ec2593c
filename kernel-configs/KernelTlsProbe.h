#pragma once
// Kernel TLS probe: the "tls" upper-layer protocol is attached to a connected
// loopback TCP socket and given an AES-GCM-128 transmit key, the way the
// migration transport encrypts streams without a user-space copy.
#include "kernel-configs/Feature.h"

namespace Atoll::capability {

Feature probeKernelTls();

}  // namespace Atoll::capability
