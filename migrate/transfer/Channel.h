#pragma once
// A byte stream to the peer: plaintext TCP on io_uring (SocketChannel) or
// TLS 1.3 over it (TlsChannel). Every socket operation carries an idle
// timeout, so a cut link ends in a clear error instead of a hang.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "migrate/transfer/IoRing.h"
#include "migrate/transfer/WireProtocol.h"
#include "util/Result.h"
#include "util/UniqueFd.h"

namespace Atoll::transfer {

class Channel {
 public:
  virtual ~Channel() = default;
  // Sends all bytes or fails.
  virtual Result<void> sendAll(const uint8_t* data, size_t length) = 0;
  // Receives exactly `length` bytes; a peer that closes first is an error.
  virtual Result<void> recvExact(uint8_t* out, size_t length) = 0;
  virtual bool encrypted() const = 0;
  virtual const std::string& peer() const = 0;
  // Bytes that crossed the socket, including framing and TLS overhead.
  virtual uint64_t wireBytesSent() const = 0;
  virtual uint64_t wireBytesReceived() const = 0;
  // Whether the peer sent something (or closed) that has not been read: the
  // sender checks this between blocks to notice a receiver's error report.
  virtual bool inputPending() const = 0;
  // Whether the socket itself is readable (data or a close), without touching
  // any decryption state: safe to ask while another thread sends.
  virtual bool socketReadable() const = 0;

  Result<void> sendFrame(const std::vector<uint8_t>& frame) {
    return sendAll(frame.data(), frame.size());
  }
  // Receives one frame whose payload fits in `maxPayload`, checksum checked.
  struct Frame {
    FrameHeader header;
    std::vector<uint8_t> payload;
  };
  Result<Frame> recvFrame(uint32_t maxPayload = kMaxPayload);
  Result<FrameHeader> recvHeader();
};

// Tells the peer why the session ends (ErrorReport, after which the peer
// expects the connection to close) and returns `error` for the caller to
// return. Best effort: the connection may be what failed, and the send waits
// no longer than the channel's idle timeout.
Error sendRefusal(Channel& channel, uint16_t code, Error error);

struct SocketOptions {
  std::chrono::milliseconds idleTimeout{30000};
  bool zeroCopySend = false;  // SEND_ZC where the kernel has it
  bool useIoUring = true;     // false forces the plain system call path
};

// Plaintext TCP with io_uring SEND/RECV (or SEND_ZC), each linked to a timeout.
class SocketChannel : public Channel {
 public:
  static Result<std::unique_ptr<SocketChannel>> create(UniqueFd socket, std::string peer,
                                                       const SocketOptions& options);
  Result<void> sendAll(const uint8_t* data, size_t length) override;
  Result<void> recvExact(uint8_t* out, size_t length) override;
  bool encrypted() const override { return false; }
  const std::string& peer() const override { return peer_; }
  uint64_t wireBytesSent() const override { return sent_; }
  uint64_t wireBytesReceived() const override { return received_; }
  bool inputPending() const override;
  bool socketReadable() const override { return inputPending(); }
  int fd() const { return socket_.get(); }
  // Receives whatever is available (at least one byte), up to `length`.
  Result<size_t> recvSome(uint8_t* out, size_t length);
  bool usesIoUring() const { return ring_ != nullptr; }
  std::chrono::milliseconds idleTimeout() const { return options_.idleTimeout; }
  bool usesZeroCopy() const { return zeroCopy_; }

 private:
  SocketChannel(UniqueFd socket, std::string peer, const SocketOptions& options)
      : socket_(std::move(socket)), peer_(std::move(peer)), options_(options) {}
  Result<size_t> recvInto(uint8_t* out, size_t length, int ringFlags);
  Result<int> runWithTimeout(uint8_t opcode, uint8_t* buffer, size_t length, int flags);

  UniqueFd socket_;
  std::string peer_;
  SocketOptions options_;
  std::unique_ptr<IoRing> ring_;
  bool zeroCopy_ = false;
  uint64_t sent_ = 0;
  uint64_t received_ = 0;
};

}  // namespace Atoll::transfer
