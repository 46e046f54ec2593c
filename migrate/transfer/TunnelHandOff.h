#pragma once
// The migration tunnel's hand-off mode: Atoll makes the TCP connection
// between the two hosts and agrees on it with the peer (TunnelHandOff ->
// TunnelAck), then gives that connection to the two QEMUs themselves. The
// peer passes its end to the destination QEMU (`getfd` + `migrate-incoming
// fd:NAME`, a QEMU started with `-incoming defer`) before it acknowledges;
// the source passes its end to the source QEMU (`getfd` + `migrate
// fd:NAME`). QEMU's stream then runs over one TCP connection from QEMU to
// QEMU, as in QEMU's own TCP migration: no unix socket hop, no relay thread.
//
// Atoll keeps its own descriptor of the source end only to read the kernel's
// byte counts (TCP_INFO) while QEMU migrates. That descriptor keeps the
// connection open after QEMU closes its copy, so the FIN reaches the
// destination only at finish(), which the caller runs once QEMU reports the
// migration finished. The destination QEMU does not wait for that FIN: it
// completes on the end marker inside the stream. A cancelled or failed
// migration is no different: QEMU shuts the socket down (which acts on the
// connection, whoever holds descriptors), so the destination sees the end.
//
// Plaintext and one connection only: a user-space TLS session cannot be
// handed to QEMU, and QEMU 7.2 takes multifd channels only as sockets it
// opens itself. Both stay with the relay (StreamTunnel.h).
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "migrate/qemu/QmpClient.h"
#include "migrate/transfer/Channel.h"
#include "migrate/transfer/Net.h"
#include "util/Result.h"
#include "util/UniqueFd.h"

namespace Atoll::transfer {

// Bytes of QEMU's stream on the connection since it was handed over, as the
// kernel counts them on the source end: sent and acknowledged by the peer,
// and received from it.
struct HandOffBytes {
  uint64_t sent = 0;
  uint64_t received = 0;
};

// Moments of a hand-off in microseconds since prepare() began; 0: not
// reached.
struct HandOffTimeline {
  int64_t peerConnectedUs = 0;  // TCP connection to the peer made
  int64_t peerAckedUs = 0;      // TunnelAck: the destination QEMU took its end
  int64_t passedUs = 0;         // the source QEMU took its end (getfd)
  int64_t migrateIssuedUs = 0;  // `migrate fd:NAME` accepted
};

// The name both QEMUs file the connection under (`getfd` fdname).
std::string handOffFdName(uint64_t tunnelId, uint32_t channel);

class HandOffSource {
 public:
  // The peer's answer: the prepared connection, or (source empty) why the
  // peer does not offer hand-off (no destination QMP socket configured, a TLS
  // server), in which case a relay tunnel may still be opened.
  struct Attempt {
    std::unique_ptr<HandOffSource> source;
    std::string notOffered;
  };
  // Connects to the peer and asks it to hand the connection to its
  // destination QEMU; returns once the peer acknowledged that the destination
  // QEMU took it. Any other failure (peer unreachable, destination QEMU
  // refusing) is an Error.
  static Result<Attempt> prepare(const Endpoint& peer, uint64_t tunnelId,
                                 const SocketOptions& options);
  ~HandOffSource();
  HandOffSource(const HandOffSource&) = delete;
  HandOffSource& operator=(const HandOffSource&) = delete;

  // Passes the connection to the QEMU behind `qmp` and starts `migrate
  // fd:NAME` on that same QMP connection (QEMU looks the name up in the
  // monitor that received it). Once only.
  Result<void> migrate(qemu::QmpClient& qmp);
  // The stream's bytes so far (0 before migrate(); the final count after
  // finish()).
  HandOffBytes bytes() const;
  // Once QEMU reported the migration finished: waits up to `drain` until the
  // peer acknowledged what the kernel still queues, takes the final count
  // and closes Atoll's descriptor, so the connection ends when QEMU's copy
  // is closed too. Safe to call more than once.
  HandOffBytes finish(std::chrono::milliseconds drain);
  const std::string& fdName() const { return fdName_; }
  const std::string& peer() const { return peer_; }
  const HandOffTimeline& timeline() const { return timeline_; }

 private:
  HandOffSource() = default;
  int64_t microsecondsSinceStart() const;

  UniqueFd socket_;
  std::string peer_;
  std::string fdName_;
  std::chrono::steady_clock::time_point startedAt_;
  HandOffTimeline timeline_;
  // The kernel's counts when the connection was handed over: the handshake's
  // frames are not QEMU's stream.
  HandOffBytes baseline_;
  HandOffBytes final_;
  bool handedOver_ = false;
  bool finished_ = false;
};

// Target side, called by TransferServer for a TunnelHandOff read from a
// plaintext connection: passes `socket` to the destination QEMU behind the
// QMP socket `destinationQmp` (`getfd` + `migrate-incoming fd:NAME`), then
// acknowledges. `consumed` is how many bytes the session has read from the
// socket (the TunnelHandOff frame): if the channel received more than that,
// the extra bytes sit in user space where QEMU would never see them, and
// the hand-off is refused.
Result<void> serveHandOff(Channel& channel, int socket, uint64_t consumed,
                          const TunnelHandOff& request, const std::string& destinationQmp);

}  // namespace Atoll::transfer
