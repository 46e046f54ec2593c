#include "migrate/transfer/TransferServer.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <optional>

#include "migrate/transfer/StreamTunnel.h"
#include "migrate/transfer/TunnelHandOff.h"

namespace Atoll::transfer {

namespace {

// How long the acceptor waits after accept() failed before trying again.
constexpr int kAcceptRetryPauseMs = 100;

// After a failed session the peer may still be sending; reading (and
// dropping) its data for a moment lets our error report reach it instead of
// being lost to a connection reset.
void lingerAfterError(int fd) {
  ::shutdown(fd, SHUT_WR);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  // MSG_TRUNC on TCP discards the bytes in the kernel: no buffer at all (a
  // thread_local one would sit in every thread's static TLS, and libraries
  // such as civetweb run their threads on 100 KiB stacks).
  constexpr size_t kDiscardChunk = 1 << 20;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    if (::recv(fd, nullptr, kDiscardChunk, MSG_DONTWAIT | MSG_TRUNC) <= 0) break;
  }
}

}  // namespace

Result<std::unique_ptr<TransferServer>> TransferServer::create(const ServerConfig& config) {
  auto staging = StagingArea::open(config.stagingDirectory, config.allowedDevices);
  if (!staging) return staging.error();
  std::shared_ptr<TlsContext> tls;
  if (config.tls.enabled()) {
    auto context = TlsContext::create(config.tls, TlsContext::Role::kServer);
    if (!context) return context.error();
    tls = *context;
  }
  auto listener = listenTcp(config.listen);
  if (!listener) return listener.error();
  auto port = boundPort(listener->get());
  if (!port) return port.error();
  // stop() wakes the acceptor through it: without it the server could never
  // be stopped.
  int wake = ::eventfd(0, EFD_CLOEXEC);
  if (wake < 0) return Error::fromErrno("eventfd", "stop signal of " + config.listen.text(), errno);
  std::unique_ptr<TransferServer> server(
      new TransferServer(config, std::move(*staging), std::move(*listener), *port));
  server->tls_ = tls;
  server->wake_ = UniqueFd(wake);
  return server;
}

TransferServer::~TransferServer() {
  stop();
}

void TransferServer::start() {
  acceptor_ = std::thread([this] { acceptLoop(); });
}

void TransferServer::stop() {
  if (stopping_.exchange(true)) return;
  uint64_t one = 1;
  (void)!::write(wake_.get(), &one, sizeof one);
  if (acceptor_.joinable()) acceptor_.join();
  std::lock_guard lock(mutex_);
  for (auto& session : sessions_) session.thread.join();
  sessions_.clear();
}

void TransferServer::acceptLoop() {
  while (!stopping_) {
    pollfd p[2] = {{listener_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p[1].revents & POLLIN) break;
    std::string peer;
    auto socket = acceptConnection(listener_.get(), &peer, config_.socket.idleTimeout);
    if (!socket) {
      // The connection stays queued when accept fails for want of
      // descriptors or memory (EMFILE, ENFILE, ENOBUFS), so the listener
      // stays readable: pause before the next try rather than spin, still
      // woken at once by stop().
      pollfd wake{wake_.get(), POLLIN, 0};
      (void)::poll(&wake, 1, kAcceptRetryPauseMs);
      continue;
    }
    std::lock_guard lock(mutex_);
    // Finished sessions are joined here rather than at stop(): an exited
    // thread keeps its stack until joined, and a long-running receiver (or
    // a peer that keeps connecting) would pile them up.
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      if (!it->done) {
        ++it;
        continue;
      }
      it->thread.join();
      it = sessions_.erase(it);
    }
    Session& session = sessions_.emplace_back();
    session.thread =
        std::thread([this, &session, fd = std::make_shared<UniqueFd>(std::move(*socket)), peer] {
          auto result = serveConnection(std::move(*fd), peer);
          if (config_.onSession) config_.onSession(peer, result);
          session.done = true;
        });
  }
}

std::optional<TunnelDestination> TransferServer::registeredDestination(uint64_t tunnelId) const {
  if (config_.tunnelDestinations == nullptr) return std::nullopt;
  return config_.tunnelDestinations->find(tunnelId);
}

Result<ReceiveReport> TransferServer::serveConnection(UniqueFd socket, const std::string& peer) {
  int fd = socket.get();
  auto plain = SocketChannel::create(std::move(socket), peer, config_.socket);
  if (!plain) return plain.error();
  std::unique_ptr<Channel> channel;
  if (tls_ != nullptr) {
    auto secured = TlsChannel::handshake(std::move(*plain), tls_);
    if (!secured) return secured.error();  // refused before any data flows
    channel = std::move(*secured);
  } else {
    channel = std::move(*plain);
  }
  auto first = channel->recvFrame();
  if (!first) return first.error();
  if (first->header.type == MessageType::kTunnelOpen) {
    auto open = decodeTunnelOpen(first->payload);
    if (!open) return sendRefusal(*channel, kTunnelErrorProtocol, open.error());
    Error refused = Error::invalid("tunnel", peer, "", "");
    auto registered = registeredDestination(open->tunnelId);
    std::string destination = registered ? registered->unixSocket : config_.tunnelDestination;
    if (destination.empty()) {
      if (registered) {
        refused.detail = "tunnel id " + tunnelIdText(open->tunnelId) +
                         " is registered for hand-off only (to the destination QEMU's QMP socket " +
                         registered->qmpSocket + "): it relays to no unix socket";
      } else if (config_.tunnelDestinations != nullptr) {
        refused.detail = "no destination is registered under tunnel id " +
                         tunnelIdText(open->tunnelId) +
                         (config_.tunnelDestinationQmp.empty()
                              ? std::string()
                              : ", and this server's fixed destination takes hand-off only (it "
                                "has no destination unix socket)");
      } else {
        refused.detail = config_.tunnelDestinationQmp.empty()
                             ? "this server carries no migration tunnels"
                             : "this server hands migration connections to the destination QEMU "
                               "(hand-off) and relays none: it has no destination unix socket";
      }
    } else if (channel->encrypted()) {
      refused.detail = "migration tunnels run in plaintext only; the server is configured for TLS";
    } else {
      auto served = serveTunnel(*channel, fd, *open, destination);
      if (!served) return served.error();
      return ReceiveReport{};
    }
    return sendRefusal(*channel, kTunnelErrorRefused, refused);
  }
  if (first->header.type == MessageType::kTunnelHandOff) {
    auto request = decodeTunnelHandOff(first->payload);
    if (!request) return sendRefusal(*channel, kTunnelErrorProtocol, request.error());
    Error refused = Error::invalid("tunnel hand-off", peer, "", "");
    // Only a plaintext SocketChannel: its receives stop at the end of each
    // frame, so nothing QEMU's stream needs sits in a user-space buffer.
    bool plaintextSocket = !channel->encrypted() && dynamic_cast<SocketChannel*>(channel.get());
    auto registered = registeredDestination(request->tunnelId);
    std::string destinationQmp = registered ? registered->qmpSocket : config_.tunnelDestinationQmp;
    if (destinationQmp.empty()) {
      // Answered as "not offered", so that the source relays instead: to the
      // registered unix socket, or to the fixed one.
      if (registered) {
        refused.detail = "tunnel id " + tunnelIdText(request->tunnelId) +
                         " is registered for relay only (to the destination QEMU's unix socket " +
                         registered->unixSocket + ")";
      } else if (config_.tunnelDestinations != nullptr) {
        refused.detail = "no destination is registered under tunnel id " +
                         tunnelIdText(request->tunnelId) +
                         (config_.tunnelDestination.empty()
                              ? std::string()
                              : ", and this server's fixed destination is relayed only (no "
                                "destination QMP socket configured)");
      } else {
        refused.detail =
            "this server does not hand connections to a destination QEMU (no destination QMP "
            "socket configured)";
      }
    } else if (!plaintextSocket) {
      refused.detail =
          "hand-off runs on plaintext connections only; the server is configured for TLS, whose "
          "session in user space cannot be handed to QEMU";
    } else {
      uint64_t consumed = kFrameHeaderSize + first->payload.size();
      auto served = serveHandOff(*channel, fd, consumed, *request, destinationQmp);
      if (!served) return served.error();
      // Its QEMU took the connection and takes no other: the registration
      // is spent, and a second source naming it is refused, not handed to
      // a QEMU that would fail it.
      if (registered) config_.tunnelDestinations->remove(request->tunnelId);
      return ReceiveReport{};
    }
    return sendRefusal(*channel, kTunnelErrorHandOffNotOffered, refused);
  }
  if (first->header.type != MessageType::kHello) {
    return sendRefusal(*channel, kTunnelErrorProtocol,
                       Error::invalid("receive", peer, messageTypeName(first->header.type),
                                      "a session must begin with Hello, TunnelOpen or "
                                      "TunnelHandOff"));
  }
  auto hello = decodeHello(first->payload);
  if (!hello) return sendRefusal(*channel, kTunnelErrorProtocol, hello.error());
  // Each image session takes its fair share of the host-wide cap for as long
  // as it runs.
  ReceiverOptions options = config_.receiver;
  std::optional<TransferLimiter> limiter;
  if (config_.hostBandwidth != nullptr) {
    limiter.emplace(0, config_.hostBandwidth);
    options.limiter = &*limiter;
  }
  auto received = receiveImage(*channel, staging_, *hello, options);
  if (received) {
    auto* tls = dynamic_cast<TlsChannel*>(channel.get());
    received->recordLayer = tls != nullptr ? tls->recordLayer() : "plaintext";
  }
  if (!received) lingerAfterError(fd);
  return received;
}

}  // namespace Atoll::transfer
