#pragma once
// The receiving endpoint: accepts connections, authenticates them (TLS 1.3
// with client certificates when configured), then serves an image transfer
// (Hello), a relayed migration-stream tunnel (TunnelOpen) or a migration
// connection handed to the destination QEMU (TunnelHandOff) on each, one
// thread per connection.
#include <atomic>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "migrate/transfer/Bandwidth.h"
#include "migrate/transfer/Channel.h"
#include "migrate/transfer/ImageReceiver.h"
#include "migrate/transfer/Net.h"
#include "migrate/transfer/StagingArea.h"
#include "migrate/transfer/TlsChannel.h"
#include "migrate/transfer/TunnelDestinations.h"

namespace Atoll::transfer {

struct ServerConfig {
  std::string stagingDirectory;
  // Block devices peers may write to by absolute path (exact match, the
  // device node itself, not a symlink); nothing else outside the directory.
  std::vector<std::string> allowedDevices;
  Endpoint listen{"0.0.0.0", 7477};
  TlsConfig tls;                  // empty: plaintext
  std::string tunnelDestination;  // unix socket of the destination QEMU; empty: no tunnels
  // QMP socket of the destination QEMU (started with `-incoming defer`) for
  // hand-off tunnels (TunnelHandOff.h); empty: hand-off is not offered.
  std::string tunnelDestinationQmp;
  // Destinations registered by tunnel id (a daemon's incoming migrations):
  // a tunnel whose id is registered goes to that destination, any other to
  // the fixed ones above; a hand-off destination is removed once its QEMU
  // took the connection. Not owned; null = none.
  TunnelDestinations* tunnelDestinations = nullptr;
  SocketOptions socket;
  ReceiverOptions receiver;
  // Host-wide receive cap shared fairly among the image transfers running
  // at once; its limit may change while they run. Not owned; null = none.
  HostBandwidth* hostBandwidth = nullptr;
  // Told about every finished session (success or failure).
  std::function<void(const std::string& peer, const Result<ReceiveReport>&)> onSession;
};

class TransferServer {
 public:
  static Result<std::unique_ptr<TransferServer>> create(const ServerConfig& config);
  ~TransferServer();
  uint16_t port() const { return port_; }
  // Accepts until stop(); serves each connection on its own thread.
  void start();
  void stop();
  // Serves one accepted connection on the calling thread.
  Result<ReceiveReport> serveConnection(UniqueFd socket, const std::string& peer);

 private:
  TransferServer(ServerConfig config, StagingArea staging, UniqueFd listener, uint16_t port)
      : config_(std::move(config)),
        staging_(std::move(staging)),
        listener_(std::move(listener)),
        port_(port) {}
  void acceptLoop();
  // The destination registered under `tunnelId`, if a registry is set and
  // holds it.
  std::optional<TunnelDestination> registeredDestination(uint64_t tunnelId) const;

  ServerConfig config_;
  StagingArea staging_;
  UniqueFd listener_;
  UniqueFd wake_;
  uint16_t port_;
  std::shared_ptr<TlsContext> tls_;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  // A connection's thread; `done` once it no longer touches the server, so
  // that accepting the next connection can join it.
  struct Session {
    std::thread thread;
    std::atomic<bool> done{false};
  };
  std::mutex mutex_;
  std::list<Session> sessions_;
};

}  // namespace Atoll::transfer
