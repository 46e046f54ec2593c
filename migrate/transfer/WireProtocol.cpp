#include "migrate/transfer/WireProtocol.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <cstring>

#include "migrate/transfer/Xxh3.h"

namespace Atoll::transfer {

namespace {

constexpr const char* kWhere = "wire";

void putLe(uint8_t* out, uint64_t value, size_t bytes) {
  for (size_t i = 0; i < bytes; ++i) out[i] = static_cast<uint8_t>(value >> (8 * i));
}
uint64_t getLe(const uint8_t* in, size_t bytes) {
  uint64_t value = 0;
  for (size_t i = 0; i < bytes; ++i) value |= static_cast<uint64_t>(in[i]) << (8 * i);
  return value;
}

// Appends little-endian fields to a frame whose header is filled in last.
class FrameWriter {
 public:
  explicit FrameWriter(MessageType type) : type_(type) {
    bytes_.reserve(256);
    bytes_.insert(bytes_.end(), kFrameHeaderSize, 0);
  }
  FrameWriter& u8(uint8_t v) { return put(v, 1); }
  FrameWriter& u16(uint16_t v) { return put(v, 2); }
  FrameWriter& u32(uint32_t v) { return put(v, 4); }
  FrameWriter& u64(uint64_t v) { return put(v, 8); }
  FrameWriter& raw(const void* data, size_t size) {
    const auto* p = static_cast<const uint8_t*>(data);
    bytes_.insert(bytes_.end(), p, p + size);
    return *this;
  }
  std::vector<uint8_t> finish() {
    std::span<const uint8_t> payload(bytes_.data() + kFrameHeaderSize,
                                     bytes_.size() - kFrameHeaderSize);
    encodeHeader({type_, static_cast<uint32_t>(payload.size()), payloadChecksum(payload)},
                 bytes_.data());
    return std::move(bytes_);
  }

 private:
  FrameWriter& put(uint64_t v, size_t n) {
    for (size_t i = 0; i < n; ++i) bytes_.push_back(static_cast<uint8_t>(v >> (8 * i)));
    return *this;
  }
  MessageType type_;
  std::vector<uint8_t> bytes_;
};

// Reads little-endian fields and remembers whether it ran past the end.
class PayloadReader {
 public:
  explicit PayloadReader(std::span<const uint8_t> payload) : payload_(payload) {}
  uint64_t get(size_t n) {
    if (payload_.size() - offset_ < n) {
      short_ = true;
      offset_ = payload_.size();
      return 0;
    }
    uint64_t v = getLe(payload_.data() + offset_, n);
    offset_ += n;
    return v;
  }
  std::span<const uint8_t> take(size_t n) {
    if (payload_.size() - offset_ < n) {
      short_ = true;
      offset_ = payload_.size();
      return {};
    }
    auto out = payload_.subspan(offset_, n);
    offset_ += n;
    return out;
  }
  size_t remaining() const { return payload_.size() - offset_; }
  // The payload had exactly the fields read, no fewer and no more.
  Result<void> exact(const char* what) const {
    if (short_ || offset_ != payload_.size()) {
      return Error::invalid("decode", kWhere, std::to_string(payload_.size()),
                            std::string(what) + " payload has the wrong length");
    }
    return ok();
  }

 private:
  std::span<const uint8_t> payload_;
  size_t offset_ = 0;
  bool short_ = false;
};

bool knownType(uint8_t type) {
  return type >= static_cast<uint8_t>(MessageType::kHello) &&
         type <= static_cast<uint8_t>(MessageType::kTunnelHandOff);
}

}  // namespace

const char* messageTypeName(MessageType type) {
  switch (type) {
    case MessageType::kHello:
      return "Hello";
    case MessageType::kHelloAck:
      return "HelloAck";
    case MessageType::kRoundBegin:
      return "RoundBegin";
    case MessageType::kBlock:
      return "Block";
    case MessageType::kZeroBlock:
      return "ZeroBlock";
    case MessageType::kRoundEnd:
      return "RoundEnd";
    case MessageType::kRoundAck:
      return "RoundAck";
    case MessageType::kVerify:
      return "Verify";
    case MessageType::kVerifyResult:
      return "VerifyResult";
    case MessageType::kErrorReport:
      return "ErrorReport";
    case MessageType::kTunnelOpen:
      return "TunnelOpen";
    case MessageType::kTunnelAck:
      return "TunnelAck";
    case MessageType::kTunnelHandOff:
      return "TunnelHandOff";
  }
  return "unknown";
}

void encodeHeader(const FrameHeader& header, uint8_t* out) {
  putLe(out, kWireMagic, 4);
  out[4] = kWireVersion;
  out[5] = static_cast<uint8_t>(header.type);
  putLe(out + 6, 0, 2);
  putLe(out + 8, header.payloadLength, 4);
  putLe(out + 12, XXH32(out, 12, 0), 4);
  putLe(out + 16, header.payloadChecksum, 8);
}

Result<FrameHeader> decodeHeader(std::span<const uint8_t> bytes) {
  if (bytes.size() < kFrameHeaderSize) {
    return Error::invalid("decode", kWhere, std::to_string(bytes.size()), "short frame header");
  }
  const uint8_t* p = bytes.data();
  if (getLe(p, 4) != kWireMagic) {
    return Error::invalid("decode", kWhere, std::to_string(getLe(p, 4)),
                          "bad magic: the peer does not speak the Atoll transfer protocol");
  }
  if (p[4] != kWireVersion) {
    return Error::invalid(
        "decode", kWhere, std::to_string(p[4]),
        "unsupported protocol version (this side speaks " + std::to_string(kWireVersion) + ")");
  }
  if (getLe(p + 12, 4) != XXH32(p, 12, 0)) {
    return Error::invalid("decode", kWhere, std::to_string(getLe(p + 12, 4)),
                          "frame header checksum mismatch");
  }
  if (!knownType(p[5])) {
    return Error::invalid("decode", kWhere, std::to_string(p[5]), "unknown message type");
  }
  if (getLe(p + 6, 2) != 0) {
    return Error::invalid("decode", kWhere, std::to_string(getLe(p + 6, 2)),
                          "flags must be 0 in protocol version 1");
  }
  FrameHeader header;
  header.type = static_cast<MessageType>(p[5]);
  header.payloadLength = static_cast<uint32_t>(getLe(p + 8, 4));
  header.payloadChecksum = getLe(p + 16, 8);
  if (header.payloadLength > kMaxPayload) {
    return Error::invalid(
        "decode", kWhere, std::to_string(header.payloadLength),
        "payload longer than the protocol maximum " + std::to_string(kMaxPayload));
  }
  return header;
}

uint64_t payloadChecksum(std::span<const uint8_t> payload) {
  return XXH3_64bits(payload.data(), payload.size());
}

uint64_t blockChecksum(uint64_t index, std::span<const uint8_t> data) {
  return xxh3WithSeed(data.data(), data.size(), index);
}

std::vector<uint8_t> encode(const Hello& m) {
  return FrameWriter(MessageType::kHello)
      .u64(m.transferId)
      .u64(m.imageSize)
      .u32(m.blockSize)
      .u16(static_cast<uint16_t>(m.name.size()))
      .raw(m.name.data(), m.name.size())
      .finish();
}
std::vector<uint8_t> encode(const HelloAck& m) {
  FrameWriter w(MessageType::kHelloAck);
  w.u64(m.heldHashes.size());
  for (uint64_t h : m.heldHashes) w.u64(h);
  return w.finish();
}
std::vector<uint8_t> encode(const RoundBegin& m) {
  return FrameWriter(MessageType::kRoundBegin).u32(m.round).u8(m.final ? 1 : 0).finish();
}
std::vector<uint8_t> encode(const RoundEnd& m) {
  return FrameWriter(MessageType::kRoundEnd)
      .u32(m.round)
      .u64(m.blocksSent)
      .u64(m.bytesSent)
      .finish();
}
std::vector<uint8_t> encode(const RoundAck& m) {
  return FrameWriter(MessageType::kRoundAck).u32(m.round).finish();
}
std::vector<uint8_t> encode(const Verify& m) {
  return FrameWriter(MessageType::kVerify).u64(m.imageHash).finish();
}
std::vector<uint8_t> encode(const VerifyResult& m) {
  return FrameWriter(MessageType::kVerifyResult).u8(m.ok ? 1 : 0).u64(m.receiverHash).finish();
}
std::vector<uint8_t> encode(const ErrorReport& m) {
  return FrameWriter(MessageType::kErrorReport)
      .u16(m.code)
      .raw(m.message.data(), m.message.size())
      .finish();
}
std::vector<uint8_t> encode(const TunnelOpen& m) {
  return FrameWriter(MessageType::kTunnelOpen).u64(m.tunnelId).u32(m.channel).finish();
}
std::vector<uint8_t> encode(const TunnelAck& m) {
  return FrameWriter(MessageType::kTunnelAck).u32(m.channel).finish();
}
std::vector<uint8_t> encode(const TunnelHandOff& m) {
  return FrameWriter(MessageType::kTunnelHandOff).u64(m.tunnelId).u32(m.channel).finish();
}
std::vector<uint8_t> encodeZeroBlock(uint64_t index) {
  return FrameWriter(MessageType::kZeroBlock).u64(index).finish();
}

void encodeBlockPrefix(uint8_t* frame, uint64_t index, uint32_t dataLength, uint64_t dataChecksum) {
  encodeHeader(
      {MessageType::kBlock, static_cast<uint32_t>(kBlockPrefixSize + dataLength), dataChecksum},
      frame);
  putLe(frame + kFrameHeaderSize, index, 8);
}

Result<void> checkPayload(const FrameHeader& header, std::span<const uint8_t> payload) {
  if (payload.size() != header.payloadLength) {
    return Error::invalid("decode", kWhere, std::to_string(payload.size()),
                          "payload length differs from the header");
  }
  uint64_t actual;
  if (header.type == MessageType::kBlock) {
    if (payload.size() < kBlockPrefixSize) {
      return Error::invalid("decode", kWhere, std::to_string(payload.size()),
                            "Block payload shorter than its index");
    }
    actual = blockChecksum(getLe(payload.data(), 8), payload.subspan(kBlockPrefixSize));
  } else {
    actual = payloadChecksum(payload);
  }
  if (actual != header.payloadChecksum) {
    return Error::invalid("decode", kWhere, messageTypeName(header.type),
                          "payload checksum mismatch");
  }
  return ok();
}

Result<Hello> decodeHello(std::span<const uint8_t> payload) {
  PayloadReader r(payload);
  Hello m;
  m.transferId = r.get(8);
  m.imageSize = r.get(8);
  m.blockSize = static_cast<uint32_t>(r.get(4));
  size_t nameLength = r.get(2);
  auto name = r.take(nameLength);
  if (auto e = r.exact("Hello"); !e) return e.error();
  m.name.assign(name.begin(), name.end());
  if (m.blockSize < kMinBlockSize || m.blockSize > kMaxBlockSize ||
      (m.blockSize & (m.blockSize - 1)) != 0) {
    return Error::invalid("decode", kWhere, std::to_string(m.blockSize),
                          "block size must be a power of two between 4 KiB and 16 MiB");
  }
  if (m.name.empty() || m.name.size() > kMaxNameLength) {
    return Error::invalid("decode", kWhere, std::to_string(m.name.size()),
                          "image name must be 1 to 1024 bytes");
  }
  if (m.name.find('\0') != std::string::npos) {
    return Error::invalid("decode", kWhere, m.name, "image name contains a NUL byte");
  }
  // Rounded up without adding first: imageSize + blockSize - 1 wraps for a
  // size near 2^64 and would count no blocks at all.
  uint64_t blocks = m.imageSize / m.blockSize + (m.imageSize % m.blockSize != 0 ? 1 : 0);
  if (blocks * 8 + 8 > kMaxPayload) {
    return Error::invalid("decode", kWhere, std::to_string(m.imageSize),
                          "image has more blocks than one HelloAck can describe");
  }
  return m;
}

Result<HelloAck> decodeHelloAck(std::span<const uint8_t> payload) {
  PayloadReader r(payload);
  uint64_t count = r.get(8);
  if (count > r.remaining() / 8) {
    return Error::invalid("decode", kWhere, std::to_string(count),
                          "HelloAck block count exceeds its payload");
  }
  HelloAck m;
  m.heldHashes.resize(count);
  for (auto& h : m.heldHashes) h = r.get(8);
  if (auto e = r.exact("HelloAck"); !e) return e.error();
  return m;
}

Result<RoundBegin> decodeRoundBegin(std::span<const uint8_t> payload) {
  PayloadReader r(payload);
  RoundBegin m;
  m.round = static_cast<uint32_t>(r.get(4));
  uint64_t final = r.get(1);
  if (auto e = r.exact("RoundBegin"); !e) return e.error();
  if (final > 1) {
    return Error::invalid("decode", kWhere, std::to_string(final), "RoundBegin final must be 0/1");
  }
  m.final = final == 1;
  return m;
}

Result<RoundEnd> decodeRoundEnd(std::span<const uint8_t> payload) {
  PayloadReader r(payload);
  RoundEnd m;
  m.round = static_cast<uint32_t>(r.get(4));
  m.blocksSent = r.get(8);
  m.bytesSent = r.get(8);
  if (auto e = r.exact("RoundEnd"); !e) return e.error();
  return m;
}

Result<RoundAck> decodeRoundAck(std::span<const uint8_t> payload) {
  PayloadReader r(payload);
  RoundAck m;
  m.round = static_cast<uint32_t>(r.get(4));
  if (auto e = r.exact("RoundAck"); !e) return e.error();
  return m;
}

Result<Verify> decodeVerify(std::span<const uint8_t> payload) {
  PayloadReader r(payload);
  Verify m;
  m.imageHash = r.get(8);
  if (auto e = r.exact("Verify"); !e) return e.error();
  return m;
}

Result<VerifyResult> decodeVerifyResult(std::span<const uint8_t> payload) {
  PayloadReader r(payload);
  VerifyResult m;
  uint64_t okByte = r.get(1);
  m.receiverHash = r.get(8);
  if (auto e = r.exact("VerifyResult"); !e) return e.error();
  if (okByte > 1) {
    return Error::invalid("decode", kWhere, std::to_string(okByte), "VerifyResult ok must be 0/1");
  }
  m.ok = okByte == 1;
  return m;
}

Result<ErrorReport> decodeErrorReport(std::span<const uint8_t> payload) {
  PayloadReader r(payload);
  ErrorReport m;
  m.code = static_cast<uint16_t>(r.get(2));
  auto text = r.take(r.remaining());
  if (auto e = r.exact("ErrorReport"); !e) return e.error();
  m.message.assign(text.begin(), text.end());
  return m;
}

namespace {
// TunnelOpen and TunnelHandOff share one payload: u64 tunnelId, u32 channel.
template <typename Request>
Result<Request> decodeTunnelRequest(std::span<const uint8_t> payload, const char* what) {
  PayloadReader r(payload);
  Request m;
  m.tunnelId = r.get(8);
  m.channel = static_cast<uint32_t>(r.get(4));
  if (auto e = r.exact(what); !e) return e.error();
  return m;
}
}  // namespace

Result<TunnelOpen> decodeTunnelOpen(std::span<const uint8_t> payload) {
  return decodeTunnelRequest<TunnelOpen>(payload, "TunnelOpen");
}

Result<TunnelAck> decodeTunnelAck(std::span<const uint8_t> payload) {
  PayloadReader r(payload);
  TunnelAck m;
  m.channel = static_cast<uint32_t>(r.get(4));
  if (auto e = r.exact("TunnelAck"); !e) return e.error();
  return m;
}

Result<TunnelHandOff> decodeTunnelHandOff(std::span<const uint8_t> payload) {
  return decodeTunnelRequest<TunnelHandOff>(payload, "TunnelHandOff");
}

Result<uint64_t> decodeBlockIndex(std::span<const uint8_t> payload) {
  if (payload.size() < kBlockPrefixSize) {
    return Error::invalid("decode", kWhere, std::to_string(payload.size()),
                          "block payload shorter than its index");
  }
  return getLe(payload.data(), 8);
}

Result<size_t> parseStream(std::span<const uint8_t> bytes) {
  size_t frames = 0;
  while (!bytes.empty()) {
    auto header = decodeHeader(bytes);
    if (!header) return header.error();
    bytes = bytes.subspan(kFrameHeaderSize);
    if (bytes.size() < header->payloadLength) {
      return Error::invalid("decode", kWhere, std::to_string(header->payloadLength),
                            "stream ends inside a payload");
    }
    auto payload = bytes.subspan(0, header->payloadLength);
    bytes = bytes.subspan(header->payloadLength);
    if (auto c = checkPayload(*header, payload); !c) return c.error();
    Result<void> decoded = ok();
    auto keep = [&decoded](const auto& r) {
      if (!r) decoded = r.error();
    };
    switch (header->type) {
      case MessageType::kHello:
        keep(decodeHello(payload));
        break;
      case MessageType::kHelloAck:
        keep(decodeHelloAck(payload));
        break;
      case MessageType::kRoundBegin:
        keep(decodeRoundBegin(payload));
        break;
      case MessageType::kBlock:
        keep(decodeBlockIndex(payload));
        break;
      case MessageType::kZeroBlock: {
        auto index = decodeBlockIndex(payload);
        if (index && payload.size() != kBlockPrefixSize) {
          decoded = Error::invalid("decode", kWhere, std::to_string(payload.size()),
                                   "ZeroBlock payload has the wrong length");
        }
        keep(index);
        break;
      }
      case MessageType::kRoundEnd:
        keep(decodeRoundEnd(payload));
        break;
      case MessageType::kRoundAck:
        keep(decodeRoundAck(payload));
        break;
      case MessageType::kVerify:
        keep(decodeVerify(payload));
        break;
      case MessageType::kVerifyResult:
        keep(decodeVerifyResult(payload));
        break;
      case MessageType::kErrorReport:
        keep(decodeErrorReport(payload));
        break;
      case MessageType::kTunnelOpen:
        keep(decodeTunnelOpen(payload));
        break;
      case MessageType::kTunnelAck:
        keep(decodeTunnelAck(payload));
        break;
      case MessageType::kTunnelHandOff:
        keep(decodeTunnelHandOff(payload));
        break;
    }
    if (!decoded) return decoded.error();
    ++frames;
  }
  return frames;
}

}  // namespace Atoll::transfer
