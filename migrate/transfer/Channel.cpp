#include "migrate/transfer/Channel.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

namespace Atoll::transfer {

namespace {
constexpr uint64_t kOpTag = 1;
constexpr uint64_t kTimeoutTag = 2;
// An operation withdrawn before submission (its timeout found no room) goes
// out as a no-op under this tag, and its completion is dropped.
constexpr uint64_t kWithdrawnTag = 3;

// The plain-syscall path waits with poll() so that it honours the same idle
// timeout as the io_uring path.
Result<void> waitReady(int fd, short events, std::chrono::milliseconds timeout,
                       const std::string& peer) {
  pollfd p{fd, events, 0};
  for (;;) {
    int rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (rc > 0) return ok();
    if (rc == 0) {
      return Error::invalid("transfer", peer, std::to_string(timeout.count()) + " ms",
                            "no progress on the connection within the idle timeout "
                            "(link down or peer stalled)");
    }
    if (errno != EINTR) return Error::fromErrno("poll", peer, errno);
  }
}
}  // namespace

Error sendRefusal(Channel& channel, uint16_t code, Error error) {
  (void)channel.sendFrame(encode(ErrorReport{code, error.message()}));
  return error;
}

Result<FrameHeader> Channel::recvHeader() {
  uint8_t bytes[kFrameHeaderSize];
  if (auto r = recvExact(bytes, sizeof bytes); !r) return r.error();
  return decodeHeader(bytes);
}

Result<Channel::Frame> Channel::recvFrame(uint32_t maxPayload) {
  auto header = recvHeader();
  if (!header) return header.error();
  if (header->payloadLength > maxPayload) {
    return Error::invalid(
        "receive", peer(), std::to_string(header->payloadLength),
        std::string(messageTypeName(header->type)) + " payload larger than expected here");
  }
  Frame frame{*header, std::vector<uint8_t>(header->payloadLength)};
  if (auto r = recvExact(frame.payload.data(), frame.payload.size()); !r) return r.error();
  if (auto c = checkPayload(frame.header, frame.payload); !c) return c.error();
  return frame;
}

Result<std::unique_ptr<SocketChannel>> SocketChannel::create(UniqueFd socket, std::string peer,
                                                             const SocketOptions& options) {
  std::unique_ptr<SocketChannel> channel(new SocketChannel(std::move(socket), peer, options));
  if (options.useIoUring) {
    auto ring = IoRing::create(8);
    if (ring && (*ring)->supports(IORING_OP_SEND) && (*ring)->supports(IORING_OP_RECV) &&
        (*ring)->supports(IORING_OP_LINK_TIMEOUT)) {
      channel->ring_ = std::move(*ring);
      channel->zeroCopy_ = options.zeroCopySend && channel->ring_->supports(IORING_OP_SEND_ZC);
    }
  }
  return channel;
}

Result<int> SocketChannel::runWithTimeout(uint8_t opcode, uint8_t* buffer, size_t length,
                                          int flags) {
  auto sqe = ring_->nextSqe();
  if (!sqe) return sqe.error();
  if (opcode == IORING_OP_SEND) {
    io_uring_prep_send(*sqe, socket_.get(), buffer, length, flags);
  } else if (opcode == IORING_OP_SEND_ZC) {
    io_uring_prep_send_zc(*sqe, socket_.get(), buffer, length, flags, 0);
  } else {
    io_uring_prep_recv(*sqe, socket_.get(), buffer, length, flags);
  }
  (*sqe)->user_data = kOpTag;
  (*sqe)->flags |= IOSQE_IO_LINK;
  __kernel_timespec timeout{};
  timeout.tv_sec = options_.idleTimeout.count() / 1000;
  timeout.tv_nsec = (options_.idleTimeout.count() % 1000) * 1000000;
  auto timer = ring_->nextSqe();
  if (!timer) {
    // The operation is queued already: left as it is, a later submit would
    // send it without a timeout and into a buffer the caller no longer holds.
    io_uring_prep_nop(*sqe);
    (*sqe)->user_data = kWithdrawnTag;
    return timer.error();
  }
  io_uring_prep_link_timeout(*timer, &timeout, 0);
  (*timer)->user_data = kTimeoutTag;

  int result = 0;
  bool haveResult = false, haveTimer = false, awaitingNotification = false, timedOut = false;
  auto record = [&](uint64_t tag, int res, unsigned cqeFlags) {
    if (tag == kWithdrawnTag) return;
    if (tag == kTimeoutTag) {
      haveTimer = true;
      timedOut = res == -ETIME;
    } else if (cqeFlags & IORING_CQE_F_NOTIF) {
      awaitingNotification = false;  // SEND_ZC: the buffer is ours again
    } else {
      haveResult = true;
      result = res;
      if (cqeFlags & IORING_CQE_F_MORE) awaitingNotification = true;
    }
  };
  auto pending = [&] { return !haveResult || !haveTimer || awaitingNotification; };
  while (pending()) {
    if (auto w = ring_->submitAndWait(1); !w) {
      ring_->cancelAndReap(pending, record);
      return w.error();
    }
    ring_->drain(record);
  }
  if (timedOut && result == -ECANCELED) {
    return Error::invalid("transfer", peer_, std::to_string(options_.idleTimeout.count()) + " ms",
                          "no progress on the connection within the idle timeout "
                          "(link down or peer stalled)");
  }
  return result;
}

Result<void> SocketChannel::sendAll(const uint8_t* data, size_t length) {
  size_t done = 0;
  while (done < length) {
    uint8_t* at = const_cast<uint8_t*>(data) + done;
    ssize_t n;
    if (ring_ != nullptr) {
      auto r = runWithTimeout(zeroCopy_ ? IORING_OP_SEND_ZC : IORING_OP_SEND, at, length - done,
                              MSG_NOSIGNAL | MSG_WAITALL);
      if (!r) return r.error();
      n = *r;
      if (n < 0) {
        if (-n == EINTR || -n == EAGAIN) continue;
        return Error::fromErrno("send", peer_, static_cast<int>(-n));
      }
    } else {
      if (auto w = waitReady(socket_.get(), POLLOUT, options_.idleTimeout, peer_); !w) {
        return w.error();
      }
      n = ::send(socket_.get(), at, length - done, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        return Error::fromErrno("send", peer_, errno);
      }
    }
    done += static_cast<size_t>(n);
    sent_ += static_cast<uint64_t>(n);
  }
  return ok();
}

Result<size_t> SocketChannel::recvSome(uint8_t* out, size_t length) {
  return recvInto(out, length, 0);
}

Result<size_t> SocketChannel::recvInto(uint8_t* out, size_t length, int ringFlags) {
  for (;;) {
    ssize_t n;
    if (ring_ != nullptr) {
      auto r = runWithTimeout(IORING_OP_RECV, out, length, ringFlags);
      if (!r) return r.error();
      n = *r;
      if (n < 0) {
        if (-n == EINTR || -n == EAGAIN) continue;
        return Error::fromErrno("recv", peer_, static_cast<int>(-n));
      }
    } else {
      if (auto w = waitReady(socket_.get(), POLLIN, options_.idleTimeout, peer_); !w) {
        return w.error();
      }
      n = ::recv(socket_.get(), out, length, MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        return Error::fromErrno("recv", peer_, errno);
      }
    }
    if (n == 0) {
      return Error::invalid("recv", peer_, std::to_string(length),
                            "the peer closed the connection");
    }
    received_ += static_cast<uint64_t>(n);
    return static_cast<size_t>(n);
  }
}

bool SocketChannel::inputPending() const {
  pollfd p{socket_.get(), POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

Result<void> SocketChannel::recvExact(uint8_t* out, size_t length) {
  size_t done = 0;
  while (done < length) {
    // MSG_WAITALL lets the kernel gather a whole block in one completion.
    auto n = recvInto(out + done, length - done, MSG_WAITALL);
    if (!n) return n.error();
    done += *n;
  }
  return ok();
}

}  // namespace Atoll::transfer
