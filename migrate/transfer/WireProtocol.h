#pragma once
// The transfer engine's wire protocol, version 1.
//
// Every message is one frame: a fixed 24-byte header followed by a payload.
// All integers are little-endian, whatever the host's byte order.
//
//   offset size field
//   0      4    magic            0x58 0x4c 0x54 0x41 ("ATLX")
//   4      1    version          kWireVersion (1); a peer refuses any other
//   5      1    type             MessageType below
//   6      2    flags            0 in version 1; a receiver refuses others
//   8      4    payload length   bytes after the header, <= kMaxPayload
//   12     4    header checksum  XXH32(bytes 0..11, seed 0): a corrupt length
//                                is caught before anything is read or allocated
//   16     8    payload checksum XXH3-64 of the payload (seed 0); for Block
//                                frames XXH3-64 of the block data seeded with
//                                the block index, which is the same value the
//                                sender keeps in its block map (BlockHashMap),
//                                so the data is hashed once per side
//
// Payloads (u8/u16/u32/u64 little-endian; "bytes" = the rest of the payload):
//   Hello        1  u64 transferId, u64 imageSize, u32 blockSize, u16 nameLength, name
//   HelloAck     2  u64 blockCount, blockCount x u64 block hash the receiver holds
//                   durably (0 = not held; a block whose hash is 0 is resent)
//   RoundBegin   3  u32 round, u8 final (1 after the source was quiesced)
//   Block        4  u64 index, bytes data (blockSize, or less for the last block)
//   ZeroBlock    5  u64 index (the whole block reads as zeros; nothing else sent)
//   RoundEnd     6  u32 round, u64 blocks sent, u64 data bytes sent
//   RoundAck     7  u32 round (receiver wrote, fsynced and recorded the round)
//   Verify       8  u64 image hash (BlockHashMap::imageHash of the source)
//   VerifyResult 9  u8 ok, u64 image hash the receiver computed from its file
//   ErrorReport 10  u16 code, bytes message (UTF-8); the sender of it closes
//   TunnelOpen  11  u64 tunnelId, u32 channel (a QEMU migration connection)
//   TunnelAck   12  u32 channel (the destination QEMU socket is connected, or
//                   for TunnelHandOff: the destination QEMU took this connection)
//   TunnelHandOff 13 u64 tunnelId, u32 channel (hand this connection itself to
//                   the destination QEMU: `getfd` + `migrate-incoming fd:NAME`)
//
// A session is: Hello -> HelloAck, then rounds (RoundBegin, Block/ZeroBlock..,
// RoundEnd -> RoundAck), then Verify -> VerifyResult. A tunnel session is
// TunnelOpen -> TunnelAck followed by raw bytes in both directions, which the
// peer relays to the destination QEMU. A hand-off session is TunnelHandOff ->
// TunnelAck, after which the connection belongs to the two QEMUs: the next
// byte on it is the source QEMU's migration stream, read by the destination
// QEMU itself. It is served on plaintext connections only (a user-space TLS
// session cannot be handed to QEMU), and only by a peer configured with the
// destination QEMU's QMP socket; otherwise the peer answers ErrorReport
// kTunnelErrorHandOffNotOffered and closes, and the requester may open a relay
// tunnel (TunnelOpen) instead.
//
// Compatibility: a change to an existing message, to the header or to the
// meaning of a field bumps kWireVersion. A new message type that a side sends
// only to ask for something new (TunnelHandOff) keeps the version: a peer
// that predates it refuses the frame as an unknown type and closes, which the
// requester reports; a version bump would instead break every session
// between old and new peers, image transfers included.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "util/Result.h"

namespace Atoll::transfer {

inline constexpr uint32_t kWireMagic = 0x584c5441;  // "ATLX" on the wire
inline constexpr uint8_t kWireVersion = 1;
inline constexpr size_t kFrameHeaderSize = 24;
// Large enough for a 16 MiB block plus its index, and for a HelloAck of a
// 16 TiB image in 8 MiB blocks; anything larger is refused unread.
inline constexpr uint32_t kMaxPayload = (16u << 20) + 64;
inline constexpr uint32_t kMinBlockSize = 4096;
inline constexpr uint32_t kMaxBlockSize = 16u << 20;
inline constexpr size_t kMaxNameLength = 1024;

enum class MessageType : uint8_t {
  kHello = 1,
  kHelloAck = 2,
  kRoundBegin = 3,
  kBlock = 4,
  kZeroBlock = 5,
  kRoundEnd = 6,
  kRoundAck = 7,
  kVerify = 8,
  kVerifyResult = 9,
  kErrorReport = 10,
  kTunnelOpen = 11,
  kTunnelAck = 12,
  kTunnelHandOff = 13,
};
const char* messageTypeName(MessageType type);

struct FrameHeader {
  MessageType type{};
  uint32_t payloadLength = 0;
  uint64_t payloadChecksum = 0;
};

// Encodes a header into exactly kFrameHeaderSize bytes.
void encodeHeader(const FrameHeader& header, uint8_t* out);
// Validates magic, version, flags, type, header checksum and length.
Result<FrameHeader> decodeHeader(std::span<const uint8_t> bytes);

// Checksum of a non-Block payload; Block frames use blockChecksum.
uint64_t payloadChecksum(std::span<const uint8_t> payload);
uint64_t blockChecksum(uint64_t index, std::span<const uint8_t> data);

struct Hello {
  uint64_t transferId = 0;
  uint64_t imageSize = 0;
  uint32_t blockSize = 0;
  std::string name;
};
struct HelloAck {
  std::vector<uint64_t> heldHashes;  // one per block
};
struct RoundBegin {
  uint32_t round = 0;
  bool final = false;
};
struct RoundEnd {
  uint32_t round = 0;
  uint64_t blocksSent = 0;
  uint64_t bytesSent = 0;
};
struct RoundAck {
  uint32_t round = 0;
};
struct Verify {
  uint64_t imageHash = 0;
};
struct VerifyResult {
  bool ok = false;
  uint64_t receiverHash = 0;
};
struct ErrorReport {
  uint16_t code = 0;
  std::string message;
};
struct TunnelOpen {
  uint64_t tunnelId = 0;
  uint32_t channel = 0;
};
struct TunnelAck {
  uint32_t channel = 0;
};
struct TunnelHandOff {
  uint64_t tunnelId = 0;
  uint32_t channel = 0;
};
// ErrorReport codes of tunnel sessions (image sessions use the same numbers
// for their own refusal, storage and protocol failures: ImageReceiver.cpp).
inline constexpr uint16_t kTunnelErrorRefused = 1;            // the server carries no such tunnel
inline constexpr uint16_t kTunnelErrorDestination = 2;        // the destination QEMU is unreachable
inline constexpr uint16_t kTunnelErrorProtocol = 3;           // a message out of place or malformed
inline constexpr uint16_t kTunnelErrorHandOffNotOffered = 4;  // TunnelHandOff not served here
// The fixed part of a Block frame; the data follows it in the same payload.
inline constexpr size_t kBlockPrefixSize = 8;

// Whole frames (header + payload) for the small messages.
std::vector<uint8_t> encode(const Hello& message);
std::vector<uint8_t> encode(const HelloAck& message);
std::vector<uint8_t> encode(const RoundBegin& message);
std::vector<uint8_t> encode(const RoundEnd& message);
std::vector<uint8_t> encode(const RoundAck& message);
std::vector<uint8_t> encode(const Verify& message);
std::vector<uint8_t> encode(const VerifyResult& message);
std::vector<uint8_t> encode(const ErrorReport& message);
std::vector<uint8_t> encode(const TunnelOpen& message);
std::vector<uint8_t> encode(const TunnelAck& message);
std::vector<uint8_t> encode(const TunnelHandOff& message);
std::vector<uint8_t> encodeZeroBlock(uint64_t index);
// Writes header and index in front of block data that already sits in memory:
// `frame` points kFrameHeaderSize + kBlockPrefixSize bytes before the data.
// The data is not copied. `dataChecksum` is blockChecksum(index, data).
void encodeBlockPrefix(uint8_t* frame, uint64_t index, uint32_t dataLength, uint64_t dataChecksum);

// Payload decoders: check the exact length and field ranges. The payload
// checksum is checked by checkPayload before these run.
Result<void> checkPayload(const FrameHeader& header, std::span<const uint8_t> payload);
Result<Hello> decodeHello(std::span<const uint8_t> payload);
Result<HelloAck> decodeHelloAck(std::span<const uint8_t> payload);
Result<RoundBegin> decodeRoundBegin(std::span<const uint8_t> payload);
Result<RoundEnd> decodeRoundEnd(std::span<const uint8_t> payload);
Result<RoundAck> decodeRoundAck(std::span<const uint8_t> payload);
Result<Verify> decodeVerify(std::span<const uint8_t> payload);
Result<VerifyResult> decodeVerifyResult(std::span<const uint8_t> payload);
Result<ErrorReport> decodeErrorReport(std::span<const uint8_t> payload);
Result<TunnelOpen> decodeTunnelOpen(std::span<const uint8_t> payload);
Result<TunnelAck> decodeTunnelAck(std::span<const uint8_t> payload);
Result<TunnelHandOff> decodeTunnelHandOff(std::span<const uint8_t> payload);
// Block and ZeroBlock: the index (and for Block, the data span in `payload`).
Result<uint64_t> decodeBlockIndex(std::span<const uint8_t> payload);

// Parses a byte stream into frames and decodes each one; the fuzz target and
// the unit tests drive it. Returns the number of complete frames accepted, or
// the first error.
Result<size_t> parseStream(std::span<const uint8_t> bytes);

}  // namespace Atoll::transfer
