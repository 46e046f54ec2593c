#pragma once
// Carries QEMU live-migration streams between hosts. The source side listens
// on a unix socket (QEMU `migrate unix:PATH`); every connection QEMU opens
// there (one, or several with multifd) becomes its own TCP connection to the
// peer's TransferServer, which connects it to the destination QEMU's
// `-incoming unix:PATH`. Bytes move socket to socket with splice(2) through
// a pipe, one thread per direction: no copy in user space.
//
// A migration lasts well under a second for a small guest, so what the
// tunnel does before QEMU's first byte can flow counts as much as the data
// path: prepare() makes the TCP connection(s), the TunnelOpen -> TunnelAck
// exchange and (on the peer) the connection to the destination QEMU before
// QEMU is told to migrate; QEMU's first connections then take them in order.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "migrate/transfer/Channel.h"
#include "migrate/transfer/Net.h"
#include "util/Result.h"
#include "util/UniqueFd.h"

namespace Atoll::transfer {

struct TunnelStats {
  std::atomic<uint64_t> bytesToPeer{0};
  std::atomic<uint64_t> bytesFromPeer{0};
  std::atomic<uint32_t> connections{0};
  std::atomic<uint32_t> open{0};
};

// Moments in the life of the tunnel's first connection (QEMU's main
// migration channel), in microseconds since the tunnel was created; 0 until
// reached. Where a migration's time goes: compared with QMP's timeline.
struct TunnelTimeline {
  std::atomic<int64_t> peerConnectedUs{0};  // TCP connection to the peer made
  std::atomic<int64_t> peerAckedUs{0};      // TunnelAck: the peer reached the destination
  std::atomic<int64_t> localAcceptedUs{0};  // QEMU connected to the unix socket
  std::atomic<int64_t> firstByteUs{0};      // first byte from QEMU passed on to the peer
  std::atomic<int64_t> lastByteUs{0};       // last byte from QEMU passed on to the peer
  std::atomic<int64_t> closedUs{0};         // both directions ended
};

// When the first and the last byte went a->b (steady clock, microseconds
// since `epoch`); null pointers: not recorded.
struct RelayMarks {
  std::chrono::steady_clock::time_point epoch;
  std::atomic<int64_t>* firstByteUs = nullptr;
  std::atomic<int64_t>* lastByteUs = nullptr;
};

// Relays both directions between two connected stream sockets until both
// sides have closed; counts the bytes a->b and b->a.
Result<void> relay(int a, int b, std::atomic<uint64_t>& aToB, std::atomic<uint64_t>& bToA,
                   const RelayMarks& marks = {});

class TunnelSource {
 public:
  static Result<std::unique_ptr<TunnelSource>> create(const std::string& unixPath,
                                                      const Endpoint& peer, uint64_t tunnelId,
                                                      const SocketOptions& options);
  ~TunnelSource();
  // Opens `channels` connections through the peer to the destination QEMU
  // now, one after the other so that the destination accepts them in the
  // order QEMU's connections will take them (the first one is QEMU's main
  // channel). The destination QEMU must already listen. Call before start();
  // connections QEMU does not use are closed by stop(), and the destination
  // sees the end of their streams.
  Result<void> prepare(uint32_t channels);
  void start();
  void stop();
  const TunnelStats& stats() const { return stats_; }
  const TunnelTimeline& timeline() const { return timeline_; }
  std::chrono::steady_clock::time_point createdAt() const { return createdAt_; }
  // Prepared connections no QEMU connection has taken yet.
  size_t preparedLeft();
  // The first error any connection met, empty if none.
  std::string lastError();

 private:
  TunnelSource() = default;
  void acceptLoop();
  // A TCP connection to the peer on which TunnelOpen was acknowledged.
  Result<UniqueFd> openThroughPeer(uint32_t channel);
  // Relays one QEMU connection; `remote` is a prepared connection or empty.
  Result<void> carry(UniqueFd local, UniqueFd remote, uint32_t channel);
  void mark(std::atomic<int64_t>& moment, uint32_t channel);

  std::string unixPath_;
  Endpoint peer_;
  uint64_t tunnelId_ = 0;
  SocketOptions options_;
  UniqueFd listener_;
  UniqueFd wake_;
  TunnelStats stats_;
  TunnelTimeline timeline_;
  std::chrono::steady_clock::time_point createdAt_ = std::chrono::steady_clock::now();
  std::atomic<bool> stopping_{false};
  uint32_t nextChannel_ = 0;  // channel number of the next connection opened
  std::thread acceptor_;
  std::mutex mutex_;
  std::list<std::thread> connections_;
  std::deque<UniqueFd> prepared_;  // in channel order, from prepare()
  std::string lastError_;
};

// Target side, called by TransferServer after it read a TunnelOpen.
Result<void> serveTunnel(Channel& channel, int socket, const TunnelOpen& open,
                         const std::string& destination);

}  // namespace Atoll::transfer
