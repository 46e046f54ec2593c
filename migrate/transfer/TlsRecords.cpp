#include "migrate/transfer/TlsRecords.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <cstdio>
#include <cstring>
#include <string_view>

namespace Atoll::transfer {

namespace {

struct CipherSpec {
  const char* cipher;  // EVP name
  const char* digest;  // the suite's HKDF hash
  size_t keyLength;
  size_t secretLength;  // the hash's output length
};

CipherSpec specOf(RecordCipher cipher) {
  switch (cipher) {
    case RecordCipher::kAes128Gcm:
      return {"AES-128-GCM", "SHA256", 16, 32};
    case RecordCipher::kAes256Gcm:
      return {"AES-256-GCM", "SHA384", 32, 48};
    case RecordCipher::kChacha20Poly1305:
      return {"ChaCha20-Poly1305", "SHA256", 32, 32};
  }
  return {"AES-128-GCM", "SHA256", 16, 32};
}

Error badRecordMac(uint64_t sequence) {
  return Error::invalid("tls read", "record " + std::to_string(sequence), "",
                        "bad record mac: the record failed authentication (altered in "
                        "transit, or the ends disagree on the keys)");
}

std::string opensslErrors() {
  std::string out = drainOpensslErrors();
  return out.empty() ? "no detail from OpenSSL" : out;
}

// HKDF-Expand-Label (RFC 8446 7.1) with an empty context:
//   HkdfLabel = uint16 length || opaque label<7..255> ("tls13 " + label)
//               || opaque context<0..255> (empty)
Result<std::vector<uint8_t>> expandLabel(const char* digest, std::span<const uint8_t> secret,
                                         std::string_view label, size_t length) {
  std::vector<uint8_t> info;
  const std::string full = "tls13 " + std::string(label);
  info.push_back(static_cast<uint8_t>(length >> 8));
  info.push_back(static_cast<uint8_t>(length));
  info.push_back(static_cast<uint8_t>(full.size()));
  info.insert(info.end(), full.begin(), full.end());
  info.push_back(0);  // empty context
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  if (kdf == nullptr) return Error::invalid("tls records", "HKDF", "", opensslErrors());
  EVP_KDF_CTX* context = EVP_KDF_CTX_new(kdf);
  EVP_KDF_free(kdf);
  if (context == nullptr) return Error::invalid("tls records", "HKDF", "", opensslErrors());
  int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>(digest), 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(secret.data()),
                                        secret.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), info.size()),
      OSSL_PARAM_construct_end(),
  };
  std::vector<uint8_t> out(length);
  int rc = EVP_KDF_derive(context, out.data(), out.size(), params);
  EVP_KDF_CTX_free(context);
  if (rc != 1)
    return Error::invalid("tls records", "HKDF-Expand-Label", std::string(label), opensslErrors());
  return out;
}

void wipe(std::vector<uint8_t>& bytes) {
  if (!bytes.empty()) OPENSSL_cleanse(bytes.data(), bytes.size());
}

}  // namespace

std::string drainOpensslErrors() {
  std::string out;
  while (unsigned long code = ERR_get_error()) {
    char text[256];
    ERR_error_string_n(code, text, sizeof text);
    if (!out.empty()) out += "; ";
    out += text;
  }
  return out;
}

Result<RecordCipher> recordCipherOf(uint16_t suiteId) {
  switch (suiteId) {
    case 0x1301:
      return RecordCipher::kAes128Gcm;
    case 0x1302:
      return RecordCipher::kAes256Gcm;
    case 0x1303:
      return RecordCipher::kChacha20Poly1305;
    default:
      char id[8];
      std::snprintf(id, sizeof id, "0x%04x", suiteId);
      return Error::invalid("tls records", "cipher suite", id,
                            "no user-space record protection for this TLS 1.3 suite");
  }
}

Result<RecordProtection> RecordProtection::create(RecordCipher cipher,
                                                  std::span<const uint8_t> secret,
                                                  Direction direction, CipherEngine engine) {
  if (secret.size() != specOf(cipher).secretLength) {
    return Error::invalid("tls records", "traffic secret", std::to_string(secret.size()),
                          "secret length does not match the cipher suite's hash");
  }
  RecordProtection protection;
  protection.cipher_ = cipher;
  protection.direction_ = direction;
  protection.engine_ = engine;
  protection.secret_.assign(secret.begin(), secret.end());
  if (auto r = protection.install(); !r) return r.error();
  return protection;
}

RecordProtection::~RecordProtection() {
  wipe(secret_);
  OPENSSL_cleanse(iv_.data(), iv_.size());
}

Result<void> RecordProtection::install() {
  const CipherSpec spec = specOf(cipher_);
  auto key = expandLabel(spec.digest, secret_, "key", spec.keyLength);
  if (!key) return key.error();
  auto iv = expandLabel(spec.digest, secret_, "iv", iv_.size());
  if (!iv) {
    wipe(*key);
    return iv.error();
  }
  std::memcpy(iv_.data(), iv->data(), iv_.size());
  wipe(*iv);
  sequence_ = 0;
  vaes_.reset();
  if (engine_ == CipherEngine::kFastest && cipher_ != RecordCipher::kChacha20Poly1305 &&
      !VaesGcm::unavailableReason()) {
    auto vaes = VaesGcm::create(*key);
    wipe(*key);
    if (!vaes) return vaes.error();
    vaes_ = std::move(*vaes);
    return ok();
  }
  // Made only here: records on vector AES never use OpenSSL's cipher.
  if (!context_) {
    context_.reset(EVP_CIPHER_CTX_new());
    if (!context_) {
      wipe(*key);
      return Error::invalid("tls records", "cipher", "", opensslErrors());
    }
  }
  // The cipher is fetched once per key; each record then only sets its
  // nonce, which keeps the per-record cost to the cipher itself.
  EVP_CIPHER* evp = EVP_CIPHER_fetch(nullptr, spec.cipher, nullptr);
  if (evp == nullptr) {
    wipe(*key);
    return Error::invalid("tls records", spec.cipher, "", opensslErrors());
  }
  int rc = EVP_CipherInit_ex(context_.get(), evp, nullptr, key->data(), nullptr,
                             direction_ == Direction::kSeal ? 1 : 0);
  EVP_CIPHER_free(evp);
  wipe(*key);
  if (rc != 1) return Error::invalid("tls records", spec.cipher, "", opensslErrors());
  return ok();
}

std::string RecordProtection::engine() const {
  return vaes_ ? VaesGcm::description() : std::string("OpenSSL");
}

std::array<uint8_t, 12> RecordProtection::nonce() const {
  std::array<uint8_t, 12> nonce = iv_;
  for (int i = 0; i < 8; ++i) nonce[11 - i] ^= static_cast<uint8_t>(sequence_ >> (8 * i));
  return nonce;
}

Result<void> RecordProtection::update() {
  const CipherSpec spec = specOf(cipher_);
  auto next = expandLabel(spec.digest, secret_, "traffic upd", spec.secretLength);
  if (!next) return next.error();
  wipe(secret_);
  secret_ = std::move(*next);
  ++generation_;
  return install();
}

Result<size_t> RecordProtection::seal(ContentType type, std::span<const uint8_t> content,
                                      uint8_t* out) {
  if (direction_ != Direction::kSeal || content.size() > kMaxRecordPlaintext) {
    return Error::invalid("tls records", "seal", std::to_string(content.size()),
                          "record content over 16 KiB or sealing with a receive key");
  }
  const size_t encrypted = content.size() + 1 + kRecordTagSize;
  out[0] = static_cast<uint8_t>(ContentType::kApplicationData);
  out[1] = 0x03;
  out[2] = 0x03;
  out[3] = static_cast<uint8_t>(encrypted >> 8);
  out[4] = static_cast<uint8_t>(encrypted);
  const auto iv = nonce();
  const uint8_t inner = static_cast<uint8_t>(type);
  uint8_t* body = out + kRecordHeaderSize;
  if (vaes_) {
    vaes_->seal(iv, {out, kRecordHeaderSize}, content, {&inner, 1}, body,
                body + content.size() + 1);
    ++sequence_;
    return kRecordHeaderSize + encrypted;
  }
  EVP_CIPHER_CTX* c = context_.get();
  int n = 0;
  if (EVP_CipherInit_ex(c, nullptr, nullptr, nullptr, iv.data(), 1) != 1 ||
      EVP_CipherUpdate(c, nullptr, &n, out, kRecordHeaderSize) != 1 ||
      EVP_CipherUpdate(c, body, &n, content.data(), static_cast<int>(content.size())) != 1 ||
      EVP_CipherUpdate(c, body + content.size(), &n, &inner, 1) != 1 ||
      EVP_CipherFinal_ex(c, body + content.size() + 1, &n) != 1 ||
      EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, kRecordTagSize, body + content.size() + 1) !=
          1) {
    return Error::invalid("tls records", "seal", std::to_string(sequence_), opensslErrors());
  }
  ++sequence_;
  return kRecordHeaderSize + encrypted;
}

Result<RecordProtection::Opened> RecordProtection::open(std::span<const uint8_t> record,
                                                        uint8_t* out) {
  if (direction_ != Direction::kOpen || record.size() < kRecordHeaderSize + kRecordTagSize + 1) {
    return Error::invalid("tls records", "open", std::to_string(record.size()),
                          "record shorter than its tag or opening with a send key");
  }
  const size_t cipherLength = record.size() - kRecordHeaderSize - kRecordTagSize;
  const auto iv = nonce();
  auto* tag = const_cast<uint8_t*>(record.data() + record.size() - kRecordTagSize);
  if (vaes_) {
    if (!vaes_->open(iv, record.first(kRecordHeaderSize),
                     record.subspan(kRecordHeaderSize, cipherLength), tag, out)) {
      return badRecordMac(sequence_);
    }
    ++sequence_;
    return innerContent({out, cipherLength});
  }
  EVP_CIPHER_CTX* c = context_.get();
  int n = 0;
  if (EVP_CipherInit_ex(c, nullptr, nullptr, nullptr, iv.data(), 0) != 1 ||
      EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, kRecordTagSize, tag) != 1 ||
      EVP_CipherUpdate(c, nullptr, &n, record.data(), kRecordHeaderSize) != 1 ||
      EVP_CipherUpdate(c, out, &n, record.data() + kRecordHeaderSize,
                       static_cast<int>(cipherLength)) != 1) {
    return Error::invalid("tls records", "open", std::to_string(sequence_), opensslErrors());
  }
  if (EVP_CipherFinal_ex(c, out + cipherLength, &n) != 1) {
    ERR_clear_error();
    return badRecordMac(sequence_);
  }
  ++sequence_;
  return innerContent({out, cipherLength});
}

Result<size_t> recordLength(std::span<const uint8_t> header, const std::string& peer) {
  if (header[0] != static_cast<uint8_t>(ContentType::kApplicationData)) {
    return Error::invalid("tls read", peer, std::to_string(header[0]),
                          "unexpected record type after the handshake (only protected "
                          "application_data records may follow it)");
  }
  // legacy_record_version is ignored on receipt (RFC 8446 5.1).
  const size_t length = (size_t(header[3]) << 8) | header[4];
  if (length > kMaxRecordCiphertext || length < kRecordTagSize + 1) {
    return Error::invalid("tls read", peer, std::to_string(length),
                          "record length outside 17..16640 bytes (record overflow)");
  }
  return kRecordHeaderSize + length;
}

Result<RecordProtection::Opened> innerContent(std::span<const uint8_t> plaintext) {
  size_t end = plaintext.size();
  while (end > 0 && plaintext[end - 1] == 0) --end;
  if (end == 0) {
    return Error::invalid("tls read", "record", "",
                          "protected record without a content type (all padding)");
  }
  return RecordProtection::Opened{static_cast<ContentType>(plaintext[end - 1]), end - 1};
}

}  // namespace Atoll::transfer
