#include "migrate/transfer/StreamTunnel.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace Atoll::transfer {

namespace {

constexpr size_t kSpliceChunk = 1 << 20;

int64_t microsecondsSince(std::chrono::steady_clock::time_point epoch) {
  auto elapsed = std::chrono::steady_clock::now() - epoch;
  // At least 1: 0 means "not reached".
  return std::max<int64_t>(1,
                           std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count());
}

// splice(2) has no MSG_NOSIGNAL: writing into a socket whose peer closed (QEMU
// or the destination going away mid-stream) raises SIGPIPE, whose default
// action ends the whole process. While a pump runs, its thread blocks SIGPIPE;
// the kernel directs that signal at the writing thread, so one raised by a
// failed splice stays pending there and is taken back before the mask is
// restored. The failure itself comes back as EPIPE.
class SigpipeBlocked {
 public:
  SigpipeBlocked() {
    sigemptyset(&pipeOnly_);
    sigaddset(&pipeOnly_, SIGPIPE);
    sigset_t pending;
    wasPending_ = ::sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
    ::pthread_sigmask(SIG_BLOCK, &pipeOnly_, &previous_);
  }
  ~SigpipeBlocked() {
    if (!wasPending_) {
      const timespec now{0, 0};
      while (::sigtimedwait(&pipeOnly_, nullptr, &now) == SIGPIPE) {
      }
    }
    ::pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
  }
  SigpipeBlocked(const SigpipeBlocked&) = delete;
  SigpipeBlocked& operator=(const SigpipeBlocked&) = delete;

 private:
  sigset_t pipeOnly_{};
  sigset_t previous_{};
  bool wasPending_ = false;
};

// One direction: src -> pipe -> dst with splice(2) on a thread of its own.
// Ends at EOF on src, then half-closes dst so the far side sees the end of
// the stream. Not on io_uring: the ring runs SPLICE on a worker thread, so a
// ring waited on for each splice adds two wake-ups per chunk to what a
// blocking splice on this dedicated thread does directly; QEMU's migration
// stream is latency-sensitive at its start and end (first bytes, downtime).
Result<void> pump(int src, int dst, std::atomic<uint64_t>& counter, const RelayMarks& marks) {
  int pipeFds[2];
  if (::pipe2(pipeFds, O_CLOEXEC) != 0) return Error::fromErrno("pipe2", "tunnel", errno);
  UniqueFd pipeRead(pipeFds[0]), pipeWrite(pipeFds[1]);
  ::fcntl(pipeWrite.get(), F_SETPIPE_SZ, static_cast<int>(kSpliceChunk));
  auto spliceOnce = [](int in, int out, size_t length) -> ssize_t {
    return ::splice(in, nullptr, out, nullptr, length, SPLICE_F_MOVE);
  };
  SigpipeBlocked noSigpipe;
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
        // Taken before shutdown(), which sets errno of its own.
        int failure = out < 0 ? errno : EPIPE;
        ::shutdown(src, SHUT_RD);
        return Error::fromErrno("splice", "tunnel destination", failure);
      }
      left -= out;
      counter += static_cast<uint64_t>(out);
    }
    if (marks.lastByteUs != nullptr) {
      int64_t now = microsecondsSince(marks.epoch);
      if (marks.firstByteUs != nullptr && marks.firstByteUs->load() == 0) *marks.firstByteUs = now;
      *marks.lastByteUs = now;
    }
  }
  ::shutdown(dst, SHUT_WR);
  return status;
}

}  // namespace

Result<void> relay(int a, int b, std::atomic<uint64_t>& aToB, std::atomic<uint64_t>& bToA,
                   const RelayMarks& marks) {
  Result<void> back = ok();
  std::thread reverse([&] { back = pump(b, a, bToA, RelayMarks{}); });
  Result<void> forward = pump(a, b, aToB, marks);
  reverse.join();
  if (!forward) return forward;
  return back;
}

Result<std::unique_ptr<TunnelSource>> TunnelSource::create(const std::string& unixPath,
                                                           const Endpoint& peer, uint64_t tunnelId,
                                                           const SocketOptions& options) {
  std::unique_ptr<TunnelSource> tunnel(new TunnelSource());
  // stop() wakes the accepting thread through this: without it the tunnel
  // could never be stopped. Made first, so that a failure leaves no socket
  // file behind.
  tunnel->wake_ = UniqueFd(::eventfd(0, EFD_CLOEXEC));
  if (!tunnel->wake_.valid()) return Error::fromErrno("eventfd", unixPath, errno);
  auto listener = listenUnix(unixPath);
  if (!listener) return listener.error();
  tunnel->listener_ = std::move(*listener);
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
  std::list<std::thread> connections;
  {
    // Joined without the lock: a connection that fails takes it to record
    // its error.
    std::lock_guard lock(mutex_);
    connections.swap(connections_);
    // Unused prepared connections: closing them ends the peer's relay, which
    // half-closes the destination QEMU's socket, so it sees the end of the
    // stream instead of waiting for one.
    prepared_.clear();
  }
  for (auto& t : connections) t.join();
}

std::string TunnelSource::lastError() {
  std::lock_guard lock(mutex_);
  return lastError_;
}

size_t TunnelSource::preparedLeft() {
  std::lock_guard lock(mutex_);
  return prepared_.size();
}

void TunnelSource::mark(std::atomic<int64_t>& moment, uint32_t channel) {
  if (channel == 0) moment = microsecondsSince(createdAt_);
}

Result<UniqueFd> TunnelSource::openThroughPeer(uint32_t channel) {
  auto remote = connectTcp(peer_, options_.idleTimeout);
  if (!remote) return remote.error();
  mark(timeline_.peerConnectedUs, channel);
  // Two small frames: plain system calls, no ring to set up per connection.
  SocketOptions handshake = options_;
  handshake.useIoUring = false;
  handshake.zeroCopySend = false;
  UniqueFd socket(::dup(remote->get()));
  if (!socket.valid()) return Error::fromErrno("dup", peer_.text(), errno);
  auto framed = SocketChannel::create(std::move(*remote), peer_.text(), handshake);
  if (!framed) return framed.error();
  if (auto s = (*framed)->sendFrame(encode(TunnelOpen{tunnelId_, channel})); !s) return s.error();
  auto frame = (*framed)->recvFrame(64 * 1024);
  if (!frame) return frame.error();
  if (frame->header.type != MessageType::kTunnelAck) {
    // Only an ErrorReport carries the peer's words; any other payload read
    // as one would be reported as a refusal in garbled text.
    auto report = decodeErrorReport(frame->payload);
    return Error::invalid(
        "tunnel", peer_.text(), std::to_string(channel),
        frame->header.type == MessageType::kErrorReport && report
            ? "peer refused: " + report->message
            : std::string("expected TunnelAck, got ") + messageTypeName(frame->header.type));
  }
  mark(timeline_.peerAckedUs, channel);
  return socket;
}

Result<void> TunnelSource::prepare(uint32_t channels) {
  if (acceptor_.joinable()) {
    return Error::invalid("tunnel", unixPath_, std::to_string(channels),
                          "connections are prepared before the tunnel starts accepting");
  }
  for (uint32_t i = 0; i < channels; ++i) {
    uint32_t channel = nextChannel_++;
    auto remote = openThroughPeer(channel);
    if (!remote) return remote.error();
    std::lock_guard lock(mutex_);
    prepared_.push_back(std::move(*remote));
  }
  return ok();
}

void TunnelSource::acceptLoop() {
  uint32_t nextPrepared = 0;
  uint32_t channel = nextChannel_;
  while (!stopping_) {
    pollfd p[2] = {{listener_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
    if (::poll(p, 2, -1) < 0 || (p[1].revents & POLLIN)) {
      if (errno == EINTR) continue;
      break;
    }
    auto local = acceptConnection(listener_.get(), nullptr, options_.idleTimeout);
    if (!local) continue;
    std::lock_guard lock(mutex_);
    // Prepared connections carry channels 0..n-1, in the order QEMU connects.
    UniqueFd remote;
    uint32_t index = 0;
    if (!prepared_.empty()) {
      index = nextPrepared++;
      remote = std::move(prepared_.front());
      prepared_.pop_front();
    } else {
      index = channel++;
    }
    mark(timeline_.localAcceptedUs, index);
    connections_.emplace_back([this, fd = std::make_shared<UniqueFd>(std::move(*local)),
                               peer = std::make_shared<UniqueFd>(std::move(remote)), index] {
      auto carried = carry(std::move(*fd), std::move(*peer), index);
      if (!carried) {
        std::lock_guard inner(mutex_);
        if (lastError_.empty()) lastError_ = carried.error().message();
      }
    });
  }
}

Result<void> TunnelSource::carry(UniqueFd local, UniqueFd remote, uint32_t channel) {
  ++stats_.connections;
  ++stats_.open;
  if (!remote.valid()) {
    auto opened = openThroughPeer(channel);
    if (!opened) {
      --stats_.open;
      return opened.error();
    }
    remote = std::move(*opened);
  }
  RelayMarks marks;
  if (channel == 0) marks = RelayMarks{createdAt_, &timeline_.firstByteUs, &timeline_.lastByteUs};
  auto relayed = relay(local.get(), remote.get(), stats_.bytesToPeer, stats_.bytesFromPeer, marks);
  mark(timeline_.closedUs, channel);
  --stats_.open;
  return relayed;
}

Result<void> serveTunnel(Channel& channel, int socket, const TunnelOpen& open,
                         const std::string& destination) {
  auto local = connectUnix(destination);
  if (!local) return sendRefusal(channel, kTunnelErrorDestination, local.error());
  if (auto s = channel.sendFrame(encode(TunnelAck{open.channel})); !s) return s;
  std::atomic<uint64_t> in{0}, out{0};
  return relay(socket, local->get(), in, out);
}

}  // namespace Atoll::transfer
