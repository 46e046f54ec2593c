#include "migrate/transfer/WireProtocol.h"

#include <gtest/gtest.h>

#include <random>

namespace Atoll::transfer {
namespace {

std::vector<uint8_t> sampleStream() {
  std::vector<uint8_t> stream;
  auto append = [&](const std::vector<uint8_t>& frame) {
    stream.insert(stream.end(), frame.begin(), frame.end());
  };
  append(encode(Hello{42, 3 << 20, 1 << 20, "vm1/disk.img"}));
  append(encode(HelloAck{{0, 1, 77}}));
  append(encode(RoundBegin{0, false}));
  std::vector<uint8_t> block(kFrameHeaderSize + kBlockPrefixSize + 4096, 0xab);
  std::span<const uint8_t> data(block.data() + kFrameHeaderSize + kBlockPrefixSize, 4096);
  encodeBlockPrefix(block.data(), 2, 4096, blockChecksum(2, data));
  append(block);
  append(encodeZeroBlock(1));
  append(encode(RoundEnd{0, 2, 4096}));
  append(encode(RoundAck{0}));
  append(encode(Verify{0x1234}));
  append(encode(VerifyResult{true, 0x1234}));
  append(encode(ErrorReport{2, "disk full"}));
  append(encode(TunnelOpen{9, 3}));
  append(encode(TunnelAck{3}));
  append(encode(TunnelHandOff{11, 0}));
  return stream;
}

TEST(WireProtocol, RoundTripsEveryMessage) {
  auto stream = sampleStream();
  auto frames = parseStream(stream);
  ASSERT_TRUE(frames) << frames.error().message();
  EXPECT_EQ(*frames, 13u);

  auto hello = encode(Hello{42, 3 << 20, 1 << 20, "vm1/disk.img"});
  auto header = decodeHeader(hello);
  ASSERT_TRUE(header);
  EXPECT_EQ(header->type, MessageType::kHello);
  std::span<const uint8_t> payload(hello.data() + kFrameHeaderSize, header->payloadLength);
  ASSERT_TRUE(checkPayload(*header, payload));
  auto decoded = decodeHello(payload);
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->transferId, 42u);
  EXPECT_EQ(decoded->imageSize, 3u << 20);
  EXPECT_EQ(decoded->name, "vm1/disk.img");
}

TEST(WireProtocol, HeaderIsLittleEndianWithMagicFirst) {
  auto frame = encode(RoundAck{0x01020304});
  ASSERT_EQ(frame.size(), kFrameHeaderSize + 4);
  EXPECT_EQ(std::string(frame.begin(), frame.begin() + 4), "ATLX");
  EXPECT_EQ(frame[4], kWireVersion);
  EXPECT_EQ(frame[5], static_cast<uint8_t>(MessageType::kRoundAck));
  EXPECT_EQ(frame[8], 4);  // payload length, low byte first
  EXPECT_EQ(frame[kFrameHeaderSize], 0x04);
  EXPECT_EQ(frame[kFrameHeaderSize + 3], 0x01);
}

TEST(WireProtocol, RefusesWrongVersionMagicAndChecksums) {
  auto frame = encode(RoundAck{7});
  auto bad = frame;
  bad[4] = 2;
  auto version = decodeHeader(bad);
  ASSERT_FALSE(version);
  EXPECT_NE(version.error().detail.find("version"), std::string::npos);
  bad = frame;
  bad[0] = 'X';
  EXPECT_FALSE(decodeHeader(bad));
  bad = frame;
  bad[9] ^= 1;  // length changed, header checksum no longer matches
  EXPECT_FALSE(decodeHeader(bad));
  bad = frame;
  bad[kFrameHeaderSize] ^= 1;  // payload changed
  auto parsed = parseStream(bad);
  ASSERT_FALSE(parsed);
  EXPECT_NE(parsed.error().detail.find("checksum"), std::string::npos);
}

TEST(WireProtocol, TunnelHandOffRoundTripsAndRefusesAnotherLength) {
  auto frame = encode(TunnelHandOff{0x0102030405060708, 5});
  auto header = decodeHeader(frame);
  ASSERT_TRUE(header) << header.error().message();
  EXPECT_EQ(header->type, MessageType::kTunnelHandOff);
  EXPECT_STREQ(messageTypeName(header->type), "TunnelHandOff");
  std::span<const uint8_t> payload(frame.data() + kFrameHeaderSize, header->payloadLength);
  ASSERT_TRUE(checkPayload(*header, payload));
  auto decoded = decodeTunnelHandOff(payload);
  ASSERT_TRUE(decoded) << decoded.error().message();
  EXPECT_EQ(decoded->tunnelId, 0x0102030405060708u);
  EXPECT_EQ(decoded->channel, 5u);
  // A payload of another length is refused.
  EXPECT_FALSE(decodeTunnelHandOff(payload.first(8)));
  // Still protocol version 1: a new request type does not change the header.
  EXPECT_EQ(frame[4], 1);
}

TEST(WireProtocol, RefusesBadHelloFields) {
  auto frame = encode(Hello{1, 1 << 20, 1000, "x"});  // not a power of two
  EXPECT_FALSE(parseStream(frame));
  frame = encode(Hello{1, 1 << 20, 1 << 20, ""});
  EXPECT_FALSE(parseStream(frame));
  frame = encode(Hello{1, 1ull << 62, 4096, "huge"});  // too many blocks for a HelloAck
  EXPECT_FALSE(parseStream(frame));
}

TEST(WireProtocol, RefusesAnImageSizeWhoseBlockCountWrapsAround) {
  // Rounding 2^64 - 1 up to whole blocks wraps past zero in 64 bits: such a
  // Hello claims no blocks at all, yet describes the largest possible image.
  for (uint64_t size : {~uint64_t{0}, ~uint64_t{0} - 4094, ~uint64_t{0} - (16u << 20) + 2}) {
    auto frame = encode(Hello{1, size, 4096, "wrap"});
    std::span<const uint8_t> payload(frame.data() + kFrameHeaderSize,
                                     frame.size() - kFrameHeaderSize);
    EXPECT_FALSE(decodeHello(payload)) << size;
    frame = encode(Hello{1, size, 16u << 20, "wrap"});
    EXPECT_FALSE(decodeHello({frame.data() + kFrameHeaderSize, frame.size() - kFrameHeaderSize}))
        << size;
  }
}

// Deterministic fuzz loop: mutations of valid streams (bit flips, truncation,
// splices, random lengths, random bytes) must be rejected or parsed, never
// crash, hang or read out of bounds (the ASan build runs this too).
TEST(WireProtocolFuzz, FixedSeedMutations) {
  const auto seed = sampleStream();
  std::mt19937_64 random(20240611);
  constexpr int kIterations = 20000;
  size_t accepted = 0, rejected = 0;
  for (int i = 0; i < kIterations; ++i) {
    std::vector<uint8_t> input = seed;
    int mutations = 1 + static_cast<int>(random() % 4);
    for (int m = 0; m < mutations; ++m) {
      switch (random() % 6) {
        case 0:  // flip a bit
          input[random() % input.size()] ^= static_cast<uint8_t>(1u << (random() % 8));
          break;
        case 1:  // truncate
          input.resize(random() % (input.size() + 1));
          break;
        case 2: {  // overwrite a length field with a random value, fixing the header checksum
          if (input.size() < kFrameHeaderSize) break;
          FrameHeader h{MessageType::kHelloAck, static_cast<uint32_t>(random()), 0};
          encodeHeader(h, input.data());
          break;
        }
        case 3: {  // duplicate a slice
          if (input.empty()) break;
          size_t from = random() % input.size();
          size_t len = random() % (input.size() - from + 1);
          input.insert(
              input.begin() + static_cast<long>(random() % (input.size() + 1)),
              seed.begin() + static_cast<long>(from % seed.size()),
              seed.begin() + static_cast<long>(std::min(seed.size(), from % seed.size() + len)));
          break;
        }
        case 4:  // random bytes
          for (auto& b : input) {
            if (random() % 16 == 0) b = static_cast<uint8_t>(random());
          }
          break;
        case 5:  // random header of a random type with a valid header checksum
          if (input.size() >= kFrameHeaderSize) {
            FrameHeader h{static_cast<MessageType>(1 + random() % 13),
                          static_cast<uint32_t>(random() % (input.size() + 1)), random()};
            encodeHeader(h, input.data());
          }
          break;
      }
      if (input.empty()) break;
    }
    auto result = parseStream(input);
    if (result) {
      ++accepted;
    } else {
      ++rejected;
      EXPECT_FALSE(result.error().message().empty());
    }
  }
  EXPECT_EQ(accepted + rejected, static_cast<size_t>(kIterations));
  EXPECT_GT(rejected, static_cast<size_t>(kIterations / 2));
}

}  // namespace
}  // namespace Atoll::transfer
