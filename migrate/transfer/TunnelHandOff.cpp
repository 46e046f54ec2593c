#include "migrate/transfer/TunnelHandOff.h"

#include <fcntl.h>
#include <linux/sockios.h>
// The kernel's tcp_info (tcpi_bytes_acked, tcpi_bytes_received); glibc's
// <netinet/tcp.h> copy of the struct stops before those fields.
#include <linux/tcp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <thread>

namespace Atoll::transfer {

namespace {

// The destination QEMU answers QMP within milliseconds when idle; a monitor
// another client holds never answers, and that must not hang the session.
constexpr std::chrono::seconds kDestinationQmpTimeout{5};
constexpr size_t kAckFrameBytes = kFrameHeaderSize + 4;
// tcp_info's tcpi_state values that tell whether the peer's FIN arrived (the
// kernel's TCP states; no UAPI header names them, and glibc's enum sits in
// <netinet/tcp.h>, whose tcp_info clashes with the kernel's).
constexpr uint8_t kTcpTimeWait = 6;
constexpr uint8_t kTcpClose = 7;
constexpr uint8_t kTcpCloseWait = 8;
constexpr uint8_t kTcpLastAck = 9;
constexpr uint8_t kTcpClosing = 11;

// Whether the peer's FIN was counted in tcpi_bytes_received. A socket whose
// descriptor is still open never shows TIME_WAIT: once both FINs are through
// it shows CLOSE, as it does after a reset. A reset leaves an error pending
// (POLLERR, which poll reports without taking it); an orderly close does not.
bool peerFinReceived(int fd, uint8_t state) {
  switch (state) {
    case kTcpTimeWait:
    case kTcpCloseWait:
    case kTcpLastAck:
    case kTcpClosing:
      return true;
    case kTcpClose: {
      pollfd p{fd, 0, 0};
      return ::poll(&p, 1, 0) >= 0 && (p.revents & POLLERR) == 0;
    }
    default:
      return false;
  }
}

// The kernel's counts on a TCP socket; nothing when it is not one.
Result<HandOffBytes> kernelCounts(int fd) {
  tcp_info info{};
  socklen_t length = sizeof info;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0) {
    return Error::fromErrno("getsockopt TCP_INFO", "hand-off connection", errno);
  }
  // Older kernels (before 4.19) return a shorter struct without the byte
  // counts used here.
  if (length < offsetof(tcp_info, tcpi_bytes_retrans) + sizeof info.tcpi_bytes_retrans) {
    return Error::invalid("getsockopt TCP_INFO", "hand-off connection", std::to_string(length),
                          "the kernel's tcp_info has no byte counts");
  }
  // tcpi_bytes_acked counts sequence space: our SYN and, once the peer
  // acknowledged it, our FIN, which QEMU sends when it shuts the socket down.
  // tcp_info shows no FIN, but the data acknowledged cannot exceed the data
  // sent at least once (bytes sent less those sent again): beyond it is the FIN.
  uint64_t firstSent = info.tcpi_bytes_sent - info.tcpi_bytes_retrans;
  uint64_t ackedData = info.tcpi_bytes_acked > 0 ? info.tcpi_bytes_acked - 1 : 0;
  HandOffBytes counts{std::min(ackedData, firstSent), info.tcpi_bytes_received};
  // The kernel counts the peer's FIN as one byte received: it is not data.
  if (counts.received > 0 && peerFinReceived(fd, info.tcpi_state)) --counts.received;
  return counts;
}

HandOffBytes minus(const HandOffBytes& now, const HandOffBytes& base) {
  return {now.sent >= base.sent ? now.sent - base.sent : 0,
          now.received >= base.received ? now.received - base.received : 0};
}

}  // namespace

std::string handOffFdName(uint64_t tunnelId, uint32_t channel) {
  char name[64];
  std::snprintf(name, sizeof name, "atoll-tunnel-%016llx-%u",
                static_cast<unsigned long long>(tunnelId), channel);
  return name;
}

int64_t HandOffSource::microsecondsSinceStart() const {
  auto elapsed = std::chrono::steady_clock::now() - startedAt_;
  // At least 1: 0 means "not reached".
  return std::max<int64_t>(1,
                           std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count());
}

Result<HandOffSource::Attempt> HandOffSource::prepare(const Endpoint& peer, uint64_t tunnelId,
                                                      const SocketOptions& options) {
  std::unique_ptr<HandOffSource> source(new HandOffSource());
  source->startedAt_ = std::chrono::steady_clock::now();
  source->peer_ = peer.text();
  source->fdName_ = handOffFdName(tunnelId, 0);
  auto remote = connectTcp(peer, options.idleTimeout);
  if (!remote) return remote.error();
  source->timeline_.peerConnectedUs = source->microsecondsSinceStart();
  // The channel reads the handshake and is then dropped; the connection
  // lives on in this descriptor (and, after migrate(), in QEMU's).
  source->socket_ = UniqueFd(::fcntl(remote->get(), F_DUPFD_CLOEXEC, 0));
  if (!source->socket_.valid()) return Error::fromErrno("dup", peer.text(), errno);
  // Two small frames: plain system calls, no ring to set up.
  SocketOptions handshake = options;
  handshake.useIoUring = false;
  handshake.zeroCopySend = false;
  auto framed = SocketChannel::create(std::move(*remote), peer.text(), handshake);
  if (!framed) return framed.error();
  if (auto s = (*framed)->sendFrame(encode(TunnelHandOff{tunnelId, 0})); !s) return s.error();
  auto frame = (*framed)->recvFrame(64 * 1024);
  if (!frame) {
    return Error::invalid("tunnel hand-off", peer.text(), frame.error().message(),
                          "the peer closed the connection instead of answering TunnelHandOff "
                          "(a peer that predates hand-off refuses it: use the relay)");
  }
  if (frame->header.type == MessageType::kErrorReport) {
    auto report = decodeErrorReport(frame->payload);
    if (!report) return report.error();
    if (report->code == kTunnelErrorHandOffNotOffered) return Attempt{nullptr, report->message};
    return Error::invalid("tunnel hand-off", peer.text(), std::to_string(report->code),
                          "peer refused: " + report->message);
  }
  if (frame->header.type != MessageType::kTunnelAck) {
    return Error::invalid("tunnel hand-off", peer.text(), messageTypeName(frame->header.type),
                          "expected TunnelAck");
  }
  auto ack = decodeTunnelAck(frame->payload);
  if (!ack) return ack.error();
  // Receives stop at the frame's end; anything beyond it would be QEMU's and
  // must stay in the kernel for QEMU to read.
  if ((*framed)->wireBytesReceived() != kAckFrameBytes) {
    return Error::invalid("tunnel hand-off", peer.text(),
                          std::to_string((*framed)->wireBytesReceived()),
                          "read beyond TunnelAck: those bytes would not reach QEMU");
  }
  source->timeline_.peerAckedUs = source->microsecondsSinceStart();
  return Attempt{std::move(source), ""};
}

HandOffSource::~HandOffSource() {
  finish(std::chrono::milliseconds(0));
}

Result<void> HandOffSource::migrate(qemu::QmpClient& qmp) {
  if (handedOver_ || !socket_.valid()) {
    return Error::invalid("migrate", qmp.socketPath(), fdName_,
                          "the hand-off connection was already given to QEMU");
  }
  auto before = kernelCounts(socket_.get());
  if (!before) return before.error();
  baseline_ = *before;
  if (auto passed = qmp.passFd(socket_.get(), fdName_); !passed) return passed.error();
  timeline_.passedUs = microsecondsSinceStart();
  if (auto started = qmp.migrate("fd:" + fdName_); !started) {
    // QEMU keeps a descriptor filed by getfd until something takes it.
    (void)qmp.execute("closefd", {{"fdname", fdName_}});
    return started.error();
  }
  handedOver_ = true;
  timeline_.migrateIssuedUs = microsecondsSinceStart();
  return ok();
}

HandOffBytes HandOffSource::bytes() const {
  if (finished_) return final_;
  if (!handedOver_) return {};
  auto now = kernelCounts(socket_.get());
  return now ? minus(*now, baseline_) : HandOffBytes{};
}

HandOffBytes HandOffSource::finish(std::chrono::milliseconds drain) {
  if (finished_) return final_;
  if (handedOver_ && socket_.valid()) {
    auto deadline = std::chrono::steady_clock::now() + drain;
    for (;;) {
      int queued = 0;
      // SIOCOUTQ: bytes sent but not yet acknowledged, plus those not sent.
      if (::ioctl(socket_.get(), SIOCOUTQ, &queued) != 0 || queued == 0) break;
      if (std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    final_ = bytes();
  }
  finished_ = true;
  socket_.reset();
  return final_;
}

Result<void> serveHandOff(Channel& channel, int socket, uint64_t consumed,
                          const TunnelHandOff& request, const std::string& destinationQmp) {
  if (channel.wireBytesReceived() != consumed) {
    return sendRefusal(
        channel, kTunnelErrorProtocol,
        Error::invalid("tunnel hand-off", channel.peer(),
                       std::to_string(channel.wireBytesReceived()),
                       "read beyond TunnelHandOff: those bytes would not reach QEMU"));
  }
  // QmpClient waits for a socket QEMU has yet to create; a server is pointed
  // at a running QEMU, so a missing socket is an answer at once.
  if (::access(destinationQmp.c_str(), F_OK) != 0) {
    return sendRefusal(
        channel, kTunnelErrorDestination,
        Error::fromErrno("access", destinationQmp, errno,
                         "the destination QEMU's QMP socket (is it running with -qmp "
                         "unix:PATH,server=on and -incoming defer?)"));
  }
  auto qmp = qemu::QmpClient::connect(destinationQmp, kDestinationQmpTimeout);
  if (!qmp) return sendRefusal(channel, kTunnelErrorDestination, qmp.error());
  std::string name = handOffFdName(request.tunnelId, request.channel);
  if (auto passed = qmp->passFd(socket, name); !passed) {
    return sendRefusal(channel, kTunnelErrorDestination, passed.error());
  }
  if (auto incoming = qmp->migrateIncoming("fd:" + name); !incoming) {
    (void)qmp->execute("closefd", {{"fdname", name}});
    Error error = incoming.error();
    error.detail += " (the destination QEMU must be started with -incoming defer)";
    return sendRefusal(channel, kTunnelErrorDestination, error);
  }
  // From here the destination QEMU reads the connection; the acknowledgement
  // goes the other way, to the source, before its QEMU writes anything.
  return channel.sendFrame(encode(TunnelAck{request.channel}));
}

}  // namespace Atoll::transfer
