// Atoll's TLS 1.3 record layer: record protection on its own (round trips,
// tampering, sequence and key updates) and whole sessions over a socket
// pair against OpenSSL's own record layer in both directions, which checks
// key derivation, nonces, framing and KeyUpdate against an independent
// implementation.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <future>
#include <random>
#include <thread>

#include "TestCertificates.h"
#include "TestImages.h"
#include "migrate/transfer/TlsChannel.h"
#include "migrate/transfer/TlsRecords.h"

namespace Atoll::transfer {
namespace {

std::vector<uint8_t> randomBytes(size_t size, uint64_t seed) {
  std::vector<uint8_t> bytes(size);
  std::mt19937_64 random(seed);
  for (auto& b : bytes) b = static_cast<uint8_t>(random());
  return bytes;
}

struct Pair {
  RecordProtection sealing;
  RecordProtection opening;
};

Pair protectionPair(RecordCipher cipher, size_t secretLength,
                    CipherEngine sealEngine = CipherEngine::kFastest,
                    CipherEngine openEngine = CipherEngine::kFastest) {
  auto secret = randomBytes(secretLength, 7);
  auto sealing =
      RecordProtection::create(cipher, secret, RecordProtection::Direction::kSeal, sealEngine);
  auto opening =
      RecordProtection::create(cipher, secret, RecordProtection::Direction::kOpen, openEngine);
  EXPECT_TRUE(sealing && opening);
  return {std::move(*sealing), std::move(*opening)};
}

// The suite, its secret's length, and who runs the cipher at both ends.
struct SuiteCase {
  RecordCipher cipher;
  size_t secretLength;
  CipherEngine engine;
};

std::string caseName(const ::testing::TestParamInfo<SuiteCase>& info) {
  const char* cipher = info.param.cipher == RecordCipher::kAes128Gcm   ? "Aes128Gcm"
                       : info.param.cipher == RecordCipher::kAes256Gcm ? "Aes256Gcm"
                                                                       : "Chacha20Poly1305";
  return std::string(cipher) +
         (info.param.engine == CipherEngine::kOpenssl ? "_OpensslCipher" : "_FastestCipher");
}

class RecordProtectionTest : public ::testing::TestWithParam<SuiteCase> {
 protected:
  void SetUp() override {
    if (GetParam().engine == CipherEngine::kFastest &&
        GetParam().cipher != RecordCipher::kChacha20Poly1305) {
      if (auto reason = VaesGcm::unavailableReason()) GTEST_SKIP() << *reason;
    }
  }
  Pair pair() {
    return protectionPair(GetParam().cipher, GetParam().secretLength, GetParam().engine,
                          GetParam().engine);
  }
};

TEST_P(RecordProtectionTest, SealedRecordsOpenInOrderAndCarryTheirType) {
  auto pair = this->pair();
  for (size_t size : {size_t(0), size_t(1), size_t(4095), kMaxRecordPlaintext}) {
    auto content = randomBytes(size, size);
    std::vector<uint8_t> record(size + kRecordOverhead);
    auto sealed = pair.sealing.seal(ContentType::kApplicationData, content, record.data());
    ASSERT_TRUE(sealed) << sealed.error().message();
    ASSERT_EQ(*sealed, record.size());
    EXPECT_EQ(record[0], 23);
    EXPECT_EQ(*recordLength({record.data(), kRecordHeaderSize}, "peer"), record.size());
    std::vector<uint8_t> plain(record.size() - kRecordHeaderSize - kRecordTagSize);
    auto opened = pair.opening.open(record, plain.data());
    ASSERT_TRUE(opened) << opened.error().message();
    EXPECT_EQ(opened->type, ContentType::kApplicationData);
    ASSERT_EQ(opened->length, size);
    EXPECT_TRUE(std::equal(content.begin(), content.end(), plain.begin()));
  }
  EXPECT_EQ(pair.sealing.sequence(), 4u);
  EXPECT_EQ(pair.opening.sequence(), 4u);
}

TEST_P(RecordProtectionTest, AnyAlteredByteOrAReorderedRecordIsRefused) {
  auto pair = this->pair();
  auto content = randomBytes(300, 3);
  std::vector<uint8_t> first(content.size() + kRecordOverhead), second(first.size());
  ASSERT_TRUE(pair.sealing.seal(ContentType::kApplicationData, content, first.data()));
  ASSERT_TRUE(pair.sealing.seal(ContentType::kApplicationData, content, second.data()));
  std::vector<uint8_t> plain(first.size());
  // Header (additional data), body and tag are all covered.
  for (size_t at : {size_t(0), size_t(4), size_t(5), size_t(150), first.size() - 1}) {
    auto altered = first;
    altered[at] ^= 0x01;
    auto opened = pair.opening.open(altered, plain.data());
    ASSERT_FALSE(opened) << "byte " << at;
    EXPECT_NE(opened.error().message().find("bad record mac"), std::string::npos);
  }
  // The second record under the first one's sequence number.
  EXPECT_FALSE(pair.opening.open(second, plain.data()));
  EXPECT_TRUE(pair.opening.open(first, plain.data()));
  EXPECT_TRUE(pair.opening.open(second, plain.data()));
}

TEST_P(RecordProtectionTest, KeyUpdateMovesBothEndsOnAndOnlyTogether) {
  auto pair = this->pair();
  auto content = randomBytes(100, 4);
  std::vector<uint8_t> record(content.size() + kRecordOverhead), plain(record.size());
  ASSERT_TRUE(pair.sealing.seal(ContentType::kApplicationData, content, record.data()));
  ASSERT_TRUE(pair.opening.open(record, plain.data()));
  ASSERT_TRUE(pair.sealing.update());
  EXPECT_EQ(pair.sealing.sequence(), 0u);
  EXPECT_EQ(pair.sealing.generation(), 1u);
  ASSERT_TRUE(pair.sealing.seal(ContentType::kApplicationData, content, record.data()));
  EXPECT_FALSE(pair.opening.open(record, plain.data())) << "old key opened a record of the new";
  ASSERT_TRUE(pair.opening.update());
  EXPECT_TRUE(pair.opening.open(record, plain.data()));
}

INSTANTIATE_TEST_SUITE_P(
    Suites, RecordProtectionTest,
    ::testing::Values(SuiteCase{RecordCipher::kAes128Gcm, 32, CipherEngine::kOpenssl},
                      SuiteCase{RecordCipher::kAes256Gcm, 48, CipherEngine::kOpenssl},
                      SuiteCase{RecordCipher::kChacha20Poly1305, 32, CipherEngine::kOpenssl},
                      SuiteCase{RecordCipher::kAes128Gcm, 32, CipherEngine::kFastest},
                      SuiteCase{RecordCipher::kAes256Gcm, 48, CipherEngine::kFastest}),
    caseName);

// Vector AES-GCM (intel-ipsec-mb) against OpenSSL's AES-GCM: every record
// sealed by one opens with the other, whatever its length (the library
// takes the content and the inner type in two pieces), before and after a
// key update, and what one refuses the other refuses.
class CipherEngineTest : public ::testing::TestWithParam<SuiteCase> {
 protected:
  void SetUp() override {
    if (auto reason = VaesGcm::unavailableReason()) GTEST_SKIP() << *reason;
  }
};

TEST_P(CipherEngineTest, VectorAesAndOpensslOpenEachOthersRecords) {
  const auto [cipher, secretLength, unused] = GetParam();
  for (bool vectorSeals : {true, false}) {
    auto pair = protectionPair(cipher, secretLength,
                               vectorSeals ? CipherEngine::kFastest : CipherEngine::kOpenssl,
                               vectorSeals ? CipherEngine::kOpenssl : CipherEngine::kFastest);
    RecordProtection& vector = vectorSeals ? pair.sealing : pair.opening;
    RecordProtection& openssl = vectorSeals ? pair.opening : pair.sealing;
    EXPECT_NE(vector.engine().find("intel-ipsec-mb"), std::string::npos) << vector.engine();
    EXPECT_EQ(openssl.engine(), "OpenSSL");
    for (int generation = 0; generation < 2; ++generation) {
      for (size_t size :
           {size_t(0), size_t(1), size_t(15), size_t(16), size_t(17), size_t(255), size_t(4095),
            size_t(9999), kMaxRecordPlaintext - 1, kMaxRecordPlaintext}) {
        auto content = randomBytes(size, size + 100 * generation);
        std::vector<uint8_t> record(size + kRecordOverhead);
        ASSERT_TRUE(pair.sealing.seal(ContentType::kHandshake, content, record.data()));
        std::vector<uint8_t> plain(record.size() - kRecordHeaderSize - kRecordTagSize);
        auto altered = record;
        altered[kRecordHeaderSize + size / 2] ^= 0x80;
        EXPECT_FALSE(pair.opening.open(altered, plain.data())) << size;
        auto opened = pair.opening.open(record, plain.data());
        ASSERT_TRUE(opened) << "size " << size << ", vector AES sealing: " << vectorSeals << ": "
                            << opened.error().message();
        EXPECT_EQ(opened->type, ContentType::kHandshake);
        ASSERT_EQ(opened->length, size);
        EXPECT_TRUE(std::equal(content.begin(), content.end(), plain.begin())) << size;
      }
      ASSERT_TRUE(pair.sealing.update());
      ASSERT_TRUE(pair.opening.update());
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    AesGcm, CipherEngineTest,
    ::testing::Values(SuiteCase{RecordCipher::kAes128Gcm, 32, CipherEngine::kFastest},
                      SuiteCase{RecordCipher::kAes256Gcm, 48, CipherEngine::kFastest}),
    caseName);

TEST(RecordFramingTest, RefusesForeignTypesOversizedRecordsAndMissingContentTypes) {
  const uint8_t handshake[] = {22, 3, 3, 0, 40};
  EXPECT_FALSE(recordLength(handshake, "peer"));
  const uint8_t oversized[] = {23, 3, 3, 0x41, 0x01};  // 16641
  auto refused = recordLength(oversized, "peer");
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("16641"), std::string::npos);
  const uint8_t tooShort[] = {23, 3, 3, 0, 16};
  EXPECT_FALSE(recordLength(tooShort, "peer"));
  const uint8_t largest[] = {23, 3, 3, 0x41, 0x00};
  EXPECT_EQ(*recordLength(largest, "peer"), kRecordHeaderSize + kMaxRecordCiphertext);

  const uint8_t padded[] = {'h', 'i', 23, 0, 0, 0};
  auto inner = innerContent(padded);
  ASSERT_TRUE(inner);
  EXPECT_EQ(inner->type, ContentType::kApplicationData);
  EXPECT_EQ(inner->length, 2u);
  const uint8_t allPadding[] = {0, 0, 0};
  EXPECT_FALSE(innerContent(allPadding));
  EXPECT_FALSE(recordCipherOf(0x1304));  // TLS_AES_128_CCM_SHA256: not offered
}

// Whole sessions: OpenSSL runs each handshake; each end then protects its
// records with Atoll's layer or OpenSSL's.
class TlsSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(testing::makeTestCertificates(dir_.path()))
        << "cannot make the test certificates (OpenSSL said why above)";
  }

  TlsConfig config(const std::string& who, bool opensslRecords) {
    TlsConfig c{dir_ / (who + ".crt"), dir_ / (who + ".key"), dir_ / "ca.crt"};
    c.opensslRecords = opensslRecords;
    c.cipherSuites = suites_;
    return c;
  }

  struct Ends {
    std::unique_ptr<TlsChannel> client, server;
  };
  Ends connect(bool clientOpenssl, bool serverOpenssl) {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    auto clientContext =
        TlsContext::create(config("client", clientOpenssl), TlsContext::Role::kClient);
    auto serverContext =
        TlsContext::create(config("server", serverOpenssl), TlsContext::Role::kServer);
    EXPECT_TRUE(clientContext && serverContext);
    // A failing end leaves the other waiting: the idle timeout ends that.
    SocketOptions quick;
    quick.idleTimeout = std::chrono::seconds(3);
    auto serverSide = std::async(std::launch::async, [&] {
      auto socket = SocketChannel::create(UniqueFd(fds[1]), "client", quick);
      return TlsChannel::handshake(std::move(*socket), *serverContext);
    });
    auto socket = SocketChannel::create(UniqueFd(fds[0]), "server", quick);
    auto client = TlsChannel::handshake(std::move(*socket), *clientContext);
    auto server = serverSide.get();
    EXPECT_TRUE(client) << client.error().message();
    EXPECT_TRUE(server) << server.error().message();
    if (!client || !server) return {};
    EXPECT_EQ((*client)->atollRecords(), !clientOpenssl) << (*client)->recordLayer();
    EXPECT_EQ((*server)->atollRecords(), !serverOpenssl) << (*server)->recordLayer();
    return {std::move(*client), std::move(*server)};
  }

  // Sends `data` in `sendPieces` from one end while the other receives it
  // in pieces of other sizes; true when every byte arrived unchanged.
  static bool carries(TlsChannel& from, TlsChannel& to, const std::vector<uint8_t>& data,
                      const std::vector<size_t>& sendPieces, size_t receivePiece) {
    auto sending = std::async(std::launch::async, [&] {
      size_t at = 0, i = 0;
      while (at < data.size()) {
        size_t n = std::min(sendPieces[i++ % sendPieces.size()], data.size() - at);
        if (auto r = from.sendAll(data.data() + at, n); !r) return r;
        at += n;
      }
      return ok();
    });
    std::vector<uint8_t> received(data.size());
    size_t at = 0;
    bool good = true;
    while (at < data.size() && good) {
      size_t n = std::min(receivePiece, data.size() - at);
      auto r = to.recvExact(received.data() + at, n);
      EXPECT_TRUE(r) << r.error().message();
      good = static_cast<bool>(r);
      at += n;
    }
    auto sent = sending.get();
    EXPECT_TRUE(sent) << sent.error().message();
    return good && sent && received == data;
  }

  testing::TempDir dir_;
  std::string suites_;
};

const std::vector<size_t> kOddPieces = {1, 16383, 16384, 16385, 3 * 1024 * 1024 + 5, 7};

TEST_F(TlsSessionTest, AtollRecordsAndOpensslRecordsUnderstandEachOther) {
  auto data = randomBytes(9 * 1024 * 1024 + 13, 11);
  for (const char* suite :
       {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}) {
    suites_ = suite;
    for (auto [clientOpenssl, serverOpenssl] :
         {std::pair{false, true}, std::pair{true, false}, std::pair{false, false}}) {
      SCOPED_TRACE(std::string(suite) + ", client " + (clientOpenssl ? "OpenSSL" : "Atoll") +
                   ", server " + (serverOpenssl ? "OpenSSL" : "Atoll"));
      auto ends = connect(clientOpenssl, serverOpenssl);
      ASSERT_TRUE(ends.client && ends.server);
      EXPECT_EQ(ends.client->cipherSuite(), suite);
      // Where the CPU has vector AES, Atoll's AES-GCM records run on it.
      const bool vectorAes =
          !VaesGcm::unavailableReason() && std::string(suite).find("AES") != std::string::npos;
      for (TlsChannel* end : {ends.client.get(), ends.server.get()}) {
        if (!end->atollRecords()) continue;
        EXPECT_EQ(end->recordLayer().find("intel-ipsec-mb") != std::string::npos, vectorAes)
            << end->recordLayer();
      }
      EXPECT_TRUE(carries(*ends.client, *ends.server, data, kOddPieces, 1024 * 1024 + 17));
      EXPECT_TRUE(carries(*ends.server, *ends.client, data, {65536}, 16));
      EXPECT_FALSE(ends.server->inputPending());
    }
  }
}

TEST_F(TlsSessionTest, AnUnknownCipherSuiteIsRefusedByName) {
  suites_ = "TLS_AES_512_GCM_SHA1024";
  auto context = TlsContext::create(config("client", false), TlsContext::Role::kClient);
  ASSERT_FALSE(context);
  EXPECT_NE(context.error().message().find("TLS_AES_512_GCM_SHA1024"), std::string::npos);
}

TEST_F(TlsSessionTest, KeyUpdatesEitherWayKeepTheStreamFlowing) {
  auto data = randomBytes(2 * 1024 * 1024 + 3, 12);
  for (auto [clientOpenssl, serverOpenssl] : {std::pair{false, true}, std::pair{true, false}}) {
    SCOPED_TRACE(std::string("client ") + (clientOpenssl ? "OpenSSL" : "Atoll"));
    auto ends = connect(clientOpenssl, serverOpenssl);
    ASSERT_TRUE(ends.client && ends.server);
    // The Atoll end's key generations each way, read after each exchange.
    TlsChannel& atoll = clientOpenssl ? *ends.server : *ends.client;
    auto generations = [&] {
      return std::pair{atoll.sendingKeyGeneration(), atoll.receivingKeyGeneration()};
    };
    // Each end moves its own key on; then each asks the other to move its
    // key on too, which the other does before its next data. A key that
    // one end moved and the other did not would fail the next record.
    ASSERT_TRUE(ends.client->updateSendingKey(false));
    EXPECT_TRUE(carries(*ends.client, *ends.server, data, {100000}, 70000));
    ASSERT_TRUE(ends.server->updateSendingKey(false));
    EXPECT_TRUE(carries(*ends.server, *ends.client, data, {100000}, 70000));
    EXPECT_EQ(generations(), std::pair(uint64_t(1), uint64_t(1)));
    ASSERT_TRUE(ends.client->updateSendingKey(true));
    EXPECT_TRUE(carries(*ends.client, *ends.server, data, {100000}, 70000));
    EXPECT_TRUE(carries(*ends.server, *ends.client, data, {100000}, 70000));
    EXPECT_EQ(generations(), std::pair(uint64_t(2), uint64_t(2)));
    ASSERT_TRUE(ends.server->updateSendingKey(true));
    EXPECT_TRUE(carries(*ends.server, *ends.client, data, {100000}, 70000));
    EXPECT_TRUE(carries(*ends.client, *ends.server, data, {100000}, 70000));
    EXPECT_EQ(generations(), std::pair(uint64_t(3), uint64_t(3)));
  }
}

TEST_F(TlsSessionTest, AClosedSessionEndsTheReadWithAClearError) {
  auto ends = connect(false, false);
  ASSERT_TRUE(ends.client && ends.server);
  ends.client.reset();  // closes the socket
  uint8_t byte;
  auto r = ends.server->recvExact(&byte, 1);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("closed"), std::string::npos) << r.error().message();
}

}  // namespace
}  // namespace Atoll::transfer
