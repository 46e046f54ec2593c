#include "migrate/transfer/StreamTunnel.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace Atoll::transfer {

namespace {

constexpr size_t kSpliceChunk = 1 << 20;

// One direction: src -> pipe -> dst with splice(2) on a thread of its own.
// Ends at EOF on src, then half-closes dst so the far side sees the end of
// the stream. Not on io_uring: the ring runs SPLICE on a worker thread, so a
// ring waited on for each splice adds two wake-ups per chunk to what a
// blocking splice on this dedicated thread does directly; QEMU's migration
// stream is latency-sensitive at its start and end (first bytes, downtime).
Result<void> pump(int src, int dst, std::atomic<uint64_t>& counter) {
  int pipeFds[2];
  if (::pipe2(pipeFds, O_CLOEXEC) != 0) return Error::fromErrno("pipe2", "tunnel", errno);
  UniqueFd pipeRead(pipeFds[0]), pipeWrite(pipeFds[1]);
  ::fcntl(pipeWrite.get(), F_SETPIPE_SZ, static_cast<int>(kSpliceChunk));
  auto spliceOnce = [](int in, int out, size_t length) -> ssize_t {
    return ::splice(in, nullptr, out, nullptr, length, SPLICE_F_MOVE);
  };
  Result<void> status = ok();
  for (;;) {
    ssize_t in = spliceOnce(src, pipeWrite.get(), kSpliceChunk);
    if (in < 0 && errno == EINTR) continue;
    if (in < 0) {
      // A peer that reset its end is a normal end of a migration stream.
      if (errno != ECONNRESET) status = Error::fromErrno("splice", "tunnel source", errno);
      break;
    }
    if (in == 0) break;
    ssize_t left = in;
    while (left > 0) {
      ssize_t out = spliceOnce(pipeRead.get(), dst, static_cast<size_t>(left));
      if (out < 0 && errno == EINTR) continue;
      if (out <= 0) {
        ::shutdown(src, SHUT_RD);
        return Error::fromErrno("splice", "tunnel destination", out < 0 ? errno : EPIPE);
      }
      left -= out;
      counter += static_cast<uint64_t>(out);
    }
  }
  ::shutdown(dst, SHUT_WR);
  return status;
}

}  // namespace

Result<void> relay(int a, int b, std::atomic<uint64_t>& aToB, std::atomic<uint64_t>& bToA) {
  Result<void> back = ok();
  std::thread reverse([&] { back = pump(b, a, bToA); });
  Result<void> forward = pump(a, b, aToB);
  reverse.join();
  if (!forward) return forward;
  return back;
}

Result<std::unique_ptr<TunnelSource>> TunnelSource::create(const std::string& unixPath,
                                                           const Endpoint& peer, uint64_t tunnelId,
                                                           const SocketOptions& options) {
  std::unique_ptr<TunnelSource> tunnel(new TunnelSource());
  auto listener = listenUnix(unixPath);
  if (!listener) return listener.error();
  tunnel->listener_ = std::move(*listener);
  tunnel->wake_ = UniqueFd(::eventfd(0, EFD_CLOEXEC));
  tunnel->unixPath_ = unixPath;
  tunnel->peer_ = peer;
  tunnel->tunnelId_ = tunnelId;
  tunnel->options_ = options;
  return tunnel;
}

TunnelSource::~TunnelSource() {
  stop();
  ::unlink(unixPath_.c_str());
}

void TunnelSource::start() {
  acceptor_ = std::thread([this] { acceptLoop(); });
}

void TunnelSource::stop() {
  if (stopping_.exchange(true)) return;
  uint64_t one = 1;
  (void)!::write(wake_.get(), &one, sizeof one);
  if (acceptor_.joinable()) acceptor_.join();
  std::lock_guard lock(mutex_);
  for (auto& t : connections_) t.join();
  connections_.clear();
}

std::string TunnelSource::lastError() {
  std::lock_guard lock(mutex_);
  return lastError_;
}

void TunnelSource::acceptLoop() {
  uint32_t channel = 0;
  while (!stopping_) {
    pollfd p[2] = {{listener_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
    if (::poll(p, 2, -1) < 0 || (p[1].revents & POLLIN)) {
      if (errno == EINTR) continue;
      break;
    }
    auto local = acceptConnection(listener_.get(), nullptr, options_.idleTimeout);
    if (!local) continue;
    uint32_t index = channel++;
    std::lock_guard lock(mutex_);
    connections_.emplace_back([this, fd = std::make_shared<UniqueFd>(std::move(*local)), index] {
      auto carried = carry(std::move(*fd), index);
      if (!carried) {
        std::lock_guard inner(mutex_);
        if (lastError_.empty()) lastError_ = carried.error().message();
      }
    });
  }
}

Result<void> TunnelSource::carry(UniqueFd local, uint32_t channel) {
  ++stats_.connections;
  ++stats_.open;
  auto remote = connectTcp(peer_, options_.idleTimeout);
  if (!remote) {
    --stats_.open;
    return remote.error();
  }
  int remoteFd = remote->get();
  auto socket = SocketChannel::create(std::move(*remote), peer_.text(), options_);
  if (!socket) return socket.error();
  if (auto s = (*socket)->sendFrame(encode(TunnelOpen{tunnelId_, channel})); !s) return s;
  auto frame = (*socket)->recvFrame(64 * 1024);
  if (!frame) return frame.error();
  if (frame->header.type != MessageType::kTunnelAck) {
    auto report = decodeErrorReport(frame->payload);
    --stats_.open;
    return Error::invalid("tunnel", peer_.text(), std::to_string(channel),
                          report ? "peer refused: " + report->message : "expected TunnelAck");
  }
  auto relayed = relay(local.get(), remoteFd, stats_.bytesToPeer, stats_.bytesFromPeer);
  --stats_.open;
  return relayed;
}

Result<void> serveTunnel(Channel& channel, int socket, const TunnelOpen& open,
                         const std::string& destination) {
  auto local = connectUnix(destination);
  if (!local) {
    (void)channel.sendFrame(encode(ErrorReport{2, local.error().message()}));
    return local.error();
  }
  if (auto s = channel.sendFrame(encode(TunnelAck{open.channel})); !s) return s;
  std::atomic<uint64_t> in{0}, out{0};
  return relay(socket, local->get(), in, out);
}

}  // namespace Atoll::transfer
