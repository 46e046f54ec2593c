#pragma once
// TLS 1.3 record protection in user space (RFC 8446 section 5), for the
// application data of a session whose handshake OpenSSL ran.
//
// Why not OpenSSL's own record layer: over a BIO pair it copies every byte
// twice more than the cipher does (into its record buffer and out of it, on
// both ends), and the ciphertext it hands over lies in small-page heap
// memory. Here a record is sealed straight from the caller's buffer into
// the send buffer and opened straight from the receive buffer into the
// caller's: the same single pass the kernel's TLS makes. The records are
// standard TLS 1.3 records under the session's application traffic keys, so
// either end may use OpenSSL's record layer instead (tests check both ways).
// The AEAD cipher itself is OpenSSL's, or for AES-GCM on CPUs with vector
// AES the faster one of intel-ipsec-mb (VaesGcm); both give the same bytes.
//
// Wire format of one record (all lengths big-endian, as TLS defines them):
//   opaque_type            1 byte   23 (application_data) for every record
//   legacy_record_version  2 bytes  0x0303
//   length                 2 bytes  ciphertext length, tag included
//   encrypted_record       length   AEAD(content || inner type || zero padding) || 16-byte tag
// The additional data is the 5-byte header; the nonce is the traffic IV
// XOR the record's 64-bit sequence number (left-padded to 12 bytes). Keys
// and IV come from the traffic secret by HKDF-Expand-Label ("key", "iv");
// a KeyUpdate moves the secret on with "traffic upd" and restarts the
// sequence at 0.
#include <openssl/evp.h>

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "migrate/transfer/VaesGcm.h"
#include "util/Result.h"

namespace Atoll::transfer {

// TLS 1.3 content types inside a protected record.
enum class ContentType : uint8_t { kAlert = 21, kHandshake = 22, kApplicationData = 23 };

constexpr size_t kRecordHeaderSize = 5;
constexpr size_t kRecordTagSize = 16;
// Largest plaintext per record (2^14), and largest ciphertext a peer may
// send (RFC 8446 5.2: 2^14 + 256).
constexpr size_t kMaxRecordPlaintext = 16384;
constexpr size_t kMaxRecordCiphertext = kMaxRecordPlaintext + 256;
// Bytes a sealed record adds to its content: header, inner type, tag.
constexpr size_t kRecordOverhead = kRecordHeaderSize + 1 + kRecordTagSize;
// Records sealed under one key before it is updated. AES-GCM's limit is
// 2^24.5 full records per key (RFC 8446 5.5); updating at 2^24 (256 GiB of
// 16 KiB records) stays below it for any cipher suite.
constexpr uint64_t kRecordsPerKey = uint64_t(1) << 24;

// OpenSSL's queued errors as one line, emptying the queue ("" when none).
std::string drainOpensslErrors();

// The TLS 1.3 cipher suites this layer protects records for.
enum class RecordCipher { kAes128Gcm, kAes256Gcm, kChacha20Poly1305 };
// The cipher of a suite's two-byte IANA id (0x1301..0x1303); none for others.
Result<RecordCipher> recordCipherOf(uint16_t suiteId);

// Who runs the AEAD cipher of the records: the fastest available (vector
// AES-GCM by intel-ipsec-mb where VaesGcm can run and the suite is AES-GCM,
// else OpenSSL), or OpenSSL always (for comparison).
enum class CipherEngine { kFastest, kOpenssl };

// One direction of a session: its traffic secret, the key and IV derived
// from it, and the sequence number of the next record. A sealing instance
// protects what this end sends, an opening one what it receives.
class RecordProtection {
 public:
  enum class Direction { kSeal, kOpen };
  static Result<RecordProtection> create(RecordCipher cipher, std::span<const uint8_t> secret,
                                         Direction direction,
                                         CipherEngine engine = CipherEngine::kFastest);
  RecordProtection(RecordProtection&&) noexcept = default;
  RecordProtection& operator=(RecordProtection&&) noexcept = default;
  ~RecordProtection();

  // Seals `content` (at most kMaxRecordPlaintext bytes) as one record of
  // `type` into `out`, which must hold content.size() + kRecordOverhead
  // bytes; returns the record's size. `out` must not overlap `content`.
  Result<size_t> seal(ContentType type, std::span<const uint8_t> content, uint8_t* out);

  struct Opened {
    ContentType type;
    size_t length;  // content bytes at the start of the output
  };
  // Opens one whole record (header included). The plaintext, inner type and
  // padding included, is written to `out`, which must hold
  // record.size() - kRecordHeaderSize - kRecordTagSize bytes; on failure its
  // contents are undefined and must not be used.
  Result<Opened> open(std::span<const uint8_t> record, uint8_t* out);

  // Moves to the next traffic secret (KeyUpdate) and restarts the sequence.
  Result<void> update();
  uint64_t sequence() const { return sequence_; }
  uint64_t generation() const { return generation_; }
  // Who runs the cipher: "OpenSSL" or VaesGcm::description().
  std::string engine() const;

 private:
  RecordProtection() = default;
  Result<void> install();
  std::array<uint8_t, 12> nonce() const;

  RecordCipher cipher_ = RecordCipher::kAes128Gcm;
  Direction direction_ = Direction::kSeal;
  CipherEngine engine_ = CipherEngine::kFastest;
  std::vector<uint8_t> secret_;
  std::array<uint8_t, 12> iv_{};
  struct ContextFree {
    void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
  };
  std::unique_ptr<EVP_CIPHER_CTX, ContextFree> context_;  // made when OpenSSL runs the cipher
  std::unique_ptr<VaesGcm> vaes_;  // set: it runs the cipher instead of context_
  uint64_t sequence_ = 0;
  uint64_t generation_ = 0;
};

// Parses a record header: the length of the whole record (header included)
// once `header` holds kRecordHeaderSize bytes; refuses a type other than
// application_data and a length outside the RFC's bounds, naming it.
Result<size_t> recordLength(std::span<const uint8_t> header, const std::string& peer);

// Where the inner plaintext's content ends: strips the zero padding and
// returns the content type and length; all zeros is a protocol error.
Result<RecordProtection::Opened> innerContent(std::span<const uint8_t> plaintext);

// A KeyUpdate handshake message (RFC 8446 4.6.3): type 24, length 1, and
// whether the peer must update its own sending key too.
constexpr std::array<uint8_t, 5> keyUpdateMessage(bool requestUpdate) {
  return {24, 0, 0, 1, static_cast<uint8_t>(requestUpdate ? 1 : 0)};
}

}  // namespace Atoll::transfer
