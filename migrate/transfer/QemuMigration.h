#pragma once
// The source host's side of one live migration of a QEMU VM through the
// tunnel, for the CLI (`atoll transfer migrate`) and the daemon
// (POST /v1/migrations) alike.
//   hand-off (the default with one channel): the connection Atoll makes to
//     the peer is handed to both QEMUs (TunnelHandOff.h); QEMU migrates over
//     it itself and Atoll reads the kernel's byte counts.
//   relay (asked for, multifd with several channels, or a peer that does not
//     offer hand-off): QEMU migrates to a unix socket of a private temporary
//     directory and the tunnel carries each connection (StreamTunnel.h).
// The connections through the peer are made before QEMU is told to migrate,
// so an unreachable peer or a destination that does not listen is reported
// before anything migrates. One thread drives an instance: QMP takes one
// command at a time.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "migrate/qemu/MigrationReport.h"
#include "migrate/qemu/MigrationStatus.h"
#include "migrate/qemu/QmpClient.h"
#include "migrate/transfer/Channel.h"
#include "migrate/transfer/Net.h"
#include "util/Result.h"

namespace Atoll::transfer {

// QEMU's multifd accepts up to 255 channels; beyond a few dozen they only
// add connections, and each one here is a TCP connection and two threads.
inline constexpr uint32_t kMaxMigrationChannels = 64;
// The largest downtime-limit QEMU accepts (QEMU 7.2: 2000 s in milliseconds;
// one more is refused). The CLI and the API check it up front, so an
// operator's mistake is named before anything is asked of QEMU.
inline constexpr uint64_t kMaxDowntimeLimitMs = 2000 * 1000;

// A downtime limit as an operator writes it: whole milliseconds from 1 to
// kMaxDowntimeLimitMs ("50"). `what` names the option in the error, which
// also quotes the text.
Result<uint64_t> parseDowntimeLimitMs(std::string_view text, std::string_view what);

struct QemuMigrationRequest {
  std::string qmpSocket;  // the source QEMU's QMP socket
  Endpoint peer;          // the peer's TransferServer
  // The tunnel's id on the wire; 0: one is chosen. A peer daemon serves the
  // destination QEMU registered under this id (TunnelDestinations.h).
  uint64_t tunnelId = 0;
  uint32_t channels = 1;   // > 1: QEMU multifd with that many channels, relayed
  uint64_t bandwidth = 0;  // QEMU's max-bandwidth in bytes/s; 0 keeps QEMU's own
  // QEMU's downtime-limit in milliseconds; 0 keeps QEMU's own (300 in QEMU
  // 7.2). Pre-copy stops the guest once what is left to send fits into the
  // measured bandwidth times this limit: on a fast link the default lets it
  // stop while much of the RAM is still unsent, so the guest's pause is long
  // and varies from run to run; a lower limit keeps iterating instead.
  uint64_t downtimeLimitMs = 0;
  bool relay = false;  // relay even where the peer offers hand-off
  // Where the relay's private directory is made; empty: $TMPDIR, else /tmp.
  std::string relayParent;
  SocketOptions socket;
};

// Which step stopped a migration that did not start: nothing was asked of
// QEMU to migrate, and the source VM runs on.
enum class MigrationStartFailure {
  kInvalid,          // the request itself (channels, no QMP socket named, the peer's port 0)
  kQemuUnreachable,  // no QMP socket there, or QEMU does not answer on it
  kPeerUnreachable,  // the peer, or the destination QEMU behind it, cannot be reached
  // QEMU refused (already migrating, a capability, a parameter, `migrate`) or
  // could not report its state, or the relay's local socket could not be made.
  kRefused,
};

class QemuMigration {
 public:
  struct Started {
    std::unique_ptr<QemuMigration> migration;  // null when it did not start
    MigrationStartFailure failure = MigrationStartFailure::kRefused;
    std::string message;  // why, naming the socket, peer or value
  };
  // Connects to the source QEMU, checks that it is not migrating, sets its
  // multifd capability (and channels), max-bandwidth and downtime-limit,
  // prepares the hand-off or the relay and tells QEMU to migrate.
  static Started start(const QemuMigrationRequest& request,
                       std::chrono::milliseconds qmpReplyTimeout = std::chrono::seconds(10));
  // Stops the relay if finish() was not called; QEMU's migration, if still
  // running, then fails on its own and the source VM runs on.
  ~QemuMigration();
  QemuMigration(const QemuMigration&) = delete;
  QemuMigration& operator=(const QemuMigration&) = delete;

  // "hand-off" or "relay".
  const std::string& mode() const { return mode_; }
  // Why the peer did not offer hand-off when the migration relays instead
  // of handing off; empty otherwise.
  const std::string& handOffNotOffered() const { return handOffNotOffered_; }
  uint64_t tunnelId() const { return tunnelId_; }
  uint32_t channels() const { return channels_; }
  // QEMU's report now (query-migrate).
  Result<qemu::MigrationStatus> poll();
  // The tunnel's figures now (final once finish() ran).
  qemu::TunnelFigures figures() const;
  // Asks QEMU to cancel (migrate_cancel); poll() reports "cancelled" once it
  // has, normally within a moment.
  Result<void> cancel();
  // Once poll() reported a finished status: ends the tunnel's part (closes
  // the hand-off's descriptor once the peer acknowledged the last bytes; waits
  // a bounded time for the relays to see QEMU's streams end, then stops them)
  // and returns the final figures. Safe to call more than once.
  qemu::TunnelFigures finish();
  // The first error any relayed connection met; empty if none (always empty
  // for hand-off).
  std::string tunnelError() const;

 private:
  struct Parts;
  QemuMigration();
  std::unique_ptr<Parts> parts_;
  std::string mode_;
  std::string handOffNotOffered_;
  uint64_t tunnelId_ = 0;
  uint32_t channels_ = 1;
};

}  // namespace Atoll::transfer
