#include "kernel-configs/IoUringProbe.h"

#include <liburing.h>

#include <cerrno>
#include <cstdlib>
#include <memory>
#include <string>

#include "util/Fs.h"

namespace Atoll::capability {

namespace {

constexpr const char* kIoUringFeature = "io_uring";
constexpr const char* kOpcodesFeature = "io_uring.opcodes";
constexpr const char* kIoUringFix = "CONFIG_IO_URING=y; sysctl -w kernel.io_uring_disabled=0";
constexpr const char* kOptionalOpcodesFix =
    "Linux 6.0 or later for SEND_ZC, 6.1 or later for SENDMSG_ZC; without them migration streams "
    "are copied on send";
constexpr unsigned kRingEntries = 8;
constexpr __u64 kNopUserData = 0xa7011;
constexpr long long kNopTimeoutNs = 2'000'000'000;

// The opcode numbers above are the kernel ABI; check them against the
// installed headers so a typo cannot probe the wrong operation.
static_assert(kIoUringOpcodes[0].opcode == IORING_OP_READ_FIXED);
static_assert(kIoUringOpcodes[1].opcode == IORING_OP_WRITE_FIXED);
static_assert(kIoUringOpcodes[2].opcode == IORING_OP_READ);
static_assert(kIoUringOpcodes[3].opcode == IORING_OP_WRITE);
static_assert(kIoUringOpcodes[4].opcode == IORING_OP_SEND);
static_assert(kIoUringOpcodes[5].opcode == IORING_OP_RECV);
static_assert(kIoUringOpcodes[6].opcode == IORING_OP_SPLICE);
static_assert(kIoUringOpcodes[7].opcode == IORING_OP_PROVIDE_BUFFERS);
static_assert(kIoUringOpcodes[8].opcode == IORING_OP_SEND_ZC);
static_assert(kIoUringOpcodes[9].opcode == IORING_OP_SENDMSG_ZC);

std::string names(bool required, bool supported, const std::set<int>& opcodes) {
  std::string out;
  for (const auto& op : kIoUringOpcodes) {
    if (op.required != required || opcodes.contains(op.opcode) != supported) continue;
    out += (out.empty() ? "" : " ") + std::string(op.name);
  }
  return out;
}

}  // namespace

std::vector<Feature> assessIoUring(const IoUringObservation& seen) {
  std::string fix = kIoUringFix;
  if (seen.setupError) {
    std::string detail = seen.setupError->message();
    std::string disabled(trim(seen.disabledSysctl));
    if (!disabled.empty() && disabled != "0")
      detail += " (kernel.io_uring_disabled = " + disabled + ")";
    return {Feature::absent(kIoUringFeature, true, detail, fix),
            Feature::absent(kOpcodesFeature, false, "no io_uring", kOptionalOpcodesFix)};
  }
  if (seen.nopError)
    return {Feature::absent(kIoUringFeature, true, seen.nopError->message(), fix),
            Feature::absent(kOpcodesFeature, false, "no working io_uring", kOptionalOpcodesFix)};
  if (seen.probeError)
    return {Feature::absent(kIoUringFeature, true, seen.probeError->message(),
                            "Linux 5.6 or later (IORING_REGISTER_PROBE)"),
            Feature::absent(kOpcodesFeature, false, "no opcode probe", kOptionalOpcodesFix)};

  std::vector<Feature> out;
  std::string requiredMissing = names(true, false, seen.supportedOpcodes);
  if (requiredMissing.empty())
    out.push_back(Feature::ok(kIoUringFeature, true,
                              "ring set up, NOP completed; required opcodes supported: " +
                                  names(true, true, seen.supportedOpcodes) + " (kernel knows " +
                                  std::to_string(seen.lastOpcode) + " opcodes)"));
  else
    out.push_back(Feature::absent(kIoUringFeature, true,
                                  "required opcodes not supported: " + requiredMissing,
                                  "a newer kernel (Linux 5.7 or later for all required opcodes)"));
  std::string optionalMissing = names(false, false, seen.supportedOpcodes);
  if (optionalMissing.empty())
    out.push_back(
        Feature::ok(kOpcodesFeature, false,
                    "optional opcodes supported: " + names(false, true, seen.supportedOpcodes)));
  else
    out.push_back(Feature::absent(kOpcodesFeature, false,
                                  "optional opcodes not supported: " + optionalMissing,
                                  kOptionalOpcodesFix));
  return out;
}

IoUringObservation observeIoUring() {
  IoUringObservation seen;
  if (auto disabled = readFile(std::string(kIoUringDisabledSysctl)))
    seen.disabledSysctl = *disabled;

  io_uring ring{};
  if (int rc = io_uring_queue_init(kRingEntries, &ring, 0); rc < 0) {
    seen.setupError =
        Error::fromErrno("io_uring_setup", "io_uring", -rc, std::to_string(kRingEntries));
    return seen;
  }
  std::unique_ptr<io_uring, decltype(&io_uring_queue_exit)> owner(&ring, &io_uring_queue_exit);

  io_uring_sqe* sqe = io_uring_get_sqe(&ring);
  io_uring_prep_nop(sqe);
  io_uring_sqe_set_data64(sqe, kNopUserData);
  if (int rc = io_uring_submit(&ring); rc != 1) {
    seen.nopError = Error::fromErrno("io_uring_submit", "io_uring", rc < 0 ? -rc : EIO, "NOP");
    return seen;
  }
  __kernel_timespec timeout{};
  timeout.tv_sec = kNopTimeoutNs / 1'000'000'000;
  io_uring_cqe* cqe = nullptr;
  if (int rc = io_uring_wait_cqe_timeout(&ring, &cqe, &timeout); rc < 0) {
    seen.nopError = Error::fromErrno("io_uring_wait_cqe", "io_uring", -rc, "NOP");
    return seen;
  }
  if (cqe->user_data != kNopUserData || cqe->res != 0) {
    seen.nopError = Error::invalid("io_uring_wait_cqe", "io_uring", std::to_string(cqe->res),
                                   "NOP completion carried unexpected data");
    io_uring_cqe_seen(&ring, cqe);
    return seen;
  }
  io_uring_cqe_seen(&ring, cqe);

  // Room for every opcode an 8-bit opcode field can name.
  constexpr unsigned kProbeOps = 256;
  auto release = [](io_uring_probe* p) { std::free(p); };
  std::unique_ptr<io_uring_probe, decltype(release)> probe(
      static_cast<io_uring_probe*>(
          std::calloc(1, sizeof(io_uring_probe) + kProbeOps * sizeof(io_uring_probe_op))),
      release);
  if (!probe) {
    seen.probeError = Error::fromErrno("calloc", "io_uring probe", ENOMEM);
    return seen;
  }
  if (int rc = io_uring_register_probe(&ring, probe.get(), kProbeOps); rc < 0) {
    seen.probeError = Error::fromErrno("io_uring_register", "io_uring", -rc, "PROBE");
    return seen;
  }
  seen.lastOpcode = probe->last_op + 1;
  for (const auto& op : kIoUringOpcodes)
    if (io_uring_opcode_supported(probe.get(), op.opcode)) seen.supportedOpcodes.insert(op.opcode);
  return seen;
}

std::vector<Feature> probeIoUring() {
  return assessIoUring(observeIoUring());
}

}  // namespace Atoll::capability
