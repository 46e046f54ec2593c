#pragma once
// Carries QEMU live-migration streams between hosts. The source side listens
// on a unix socket (QEMU `migrate unix:PATH`); every connection QEMU opens
// there (one, or several with multifd) becomes its own TCP connection to the
// peer's TransferServer, which connects it to the destination QEMU's
// `-incoming unix:PATH`. Bytes move socket to socket with splice(2) through
// a pipe, one thread per direction: no copy in user space.
#include <atomic>
#include <cstdint>
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

// Relays both directions between two connected stream sockets until both
// sides have closed; counts the bytes a->b and b->a.
Result<void> relay(int a, int b, std::atomic<uint64_t>& aToB, std::atomic<uint64_t>& bToA);

class TunnelSource {
 public:
  static Result<std::unique_ptr<TunnelSource>> create(const std::string& unixPath,
                                                      const Endpoint& peer, uint64_t tunnelId,
                                                      const SocketOptions& options);
  ~TunnelSource();
  void start();
  void stop();
  const TunnelStats& stats() const { return stats_; }
  // The first error any connection met, empty if none.
  std::string lastError();

 private:
  TunnelSource() = default;
  void acceptLoop();
  Result<void> carry(UniqueFd local, uint32_t channel);

  std::string unixPath_;
  Endpoint peer_;
  uint64_t tunnelId_ = 0;
  SocketOptions options_;
  UniqueFd listener_;
  UniqueFd wake_;
  TunnelStats stats_;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  std::mutex mutex_;
  std::list<std::thread> connections_;
  std::string lastError_;
};

// Target side, called by TransferServer after it read a TunnelOpen.
Result<void> serveTunnel(Channel& channel, int socket, const TunnelOpen& open,
                         const std::string& destination);

}  // namespace Atoll::transfer
