#pragma once
// AES-GCM by Intel's multi-buffer crypto library (intel-ipsec-mb, Debian's
// libipsec-mb), for TLS records on CPUs with vector AES and carry-less
// multiply on 512-bit registers (VAES and VPCLMULQDQ with AVX-512: AMD
// Zen 4, Intel Ice Lake and later).
//
// Why: Debian 12's OpenSSL (3.0) has no vector-AES code, so its AES-GCM
// runs on AES-NI at about 4 GB/s per core; the library's AVX-512 code
// encrypts 16 KiB records at 11-14 GB/s on the same core. At those rates
// the cipher, not the copies, set the price of TLS on a transfer. Where the
// CPU lacks the instructions, or the library was absent at build time,
// unavailableReason() says so and records stay with OpenSSL.
//
// The result is standard AES-GCM (NIST SP 800-38D) with a 12-byte IV and a
// 16-byte tag: records sealed here open with OpenSSL and the other way
// round (the unit tests check both, for both key sizes).
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "util/Result.h"

namespace Atoll::transfer {

class VaesGcm {
 public:
  // Why vector AES-GCM cannot run here; nullopt where it can.
  static std::optional<std::string> unavailableReason();
  // The library's version and the code it chose, for reports.
  static std::string description();

  // A 16-byte (AES-128) or 32-byte (AES-256) key; an error where
  // unavailableReason() has one, or for another key length.
  static Result<std::unique_ptr<VaesGcm>> create(std::span<const uint8_t> key);
  ~VaesGcm();  // wipes the expanded key
  VaesGcm(const VaesGcm&) = delete;
  VaesGcm& operator=(const VaesGcm&) = delete;

  // Encrypts `first` followed by `second` (a record's content and its
  // inner content type) into `out` (first.size() + second.size() bytes),
  // authenticating `aad` too, and writes the 16-byte tag to `tag`.
  void seal(const std::array<uint8_t, 12>& iv, std::span<const uint8_t> aad,
            std::span<const uint8_t> first, std::span<const uint8_t> second, uint8_t* out,
            uint8_t* tag);
  // Decrypts `ciphertext` into `out` and checks `tag` (16 bytes) in
  // constant time; false when it does not match, and then `out` holds
  // nothing usable.
  bool open(const std::array<uint8_t, 12>& iv, std::span<const uint8_t> aad,
            std::span<const uint8_t> ciphertext, const uint8_t* tag, uint8_t* out);

 private:
  struct State;
  explicit VaesGcm(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace Atoll::transfer
