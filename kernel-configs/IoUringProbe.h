#pragma once
// io_uring probe: a ring is set up, a NOP makes the round trip, and the
// kernel's opcode probe (IORING_REGISTER_PROBE via liburing) is checked for
// the opcodes the migration transfer engine submits.
#include <array>
#include <optional>
#include <set>
#include <string_view>
#include <vector>

#include "kernel-configs/Feature.h"
#include "util/Error.h"

namespace Atoll::capability {

struct IoUringOpcode {
  int opcode;  // IORING_OP_*
  std::string_view name;
  bool required;  // the transfer engine has no fallback without it
};

// Values are the kernel's enum io_uring_op (stable ABI).
inline constexpr std::array<IoUringOpcode, 10> kIoUringOpcodes = {{
    {4, "READ_FIXED", true},
    {5, "WRITE_FIXED", true},
    {22, "READ", true},
    {23, "WRITE", true},
    {26, "SEND", true},
    {27, "RECV", true},
    {30, "SPLICE", true},
    {31, "PROVIDE_BUFFERS", true},
    {47, "SEND_ZC", false},
    {48, "SENDMSG_ZC", false},
}};

inline constexpr std::string_view kIoUringDisabledSysctl = "/proc/sys/kernel/io_uring_disabled";

// What the probe saw, separate from the verdict so the verdict is testable.
struct IoUringObservation {
  std::optional<Error> setupError;  // io_uring_queue_init failed
  std::optional<Error> nopError;    // the NOP did not complete cleanly
  std::optional<Error> probeError;  // IORING_REGISTER_PROBE failed
  std::set<int> supportedOpcodes;
  int lastOpcode = 0;          // highest opcode the kernel knows
  std::string disabledSysctl;  // content of kernel.io_uring_disabled, if readable
};

// "io_uring" (ring, NOP, required opcodes) and "io_uring.opcodes" (the
// optional zero-copy sends), in that order.
std::vector<Feature> assessIoUring(const IoUringObservation& seen);

IoUringObservation observeIoUring();
std::vector<Feature> probeIoUring();

}  // namespace Atoll::capability
