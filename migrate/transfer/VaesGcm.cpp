#include "migrate/transfer/VaesGcm.h"

#include <openssl/crypto.h>

#include <cstring>

#ifdef ATOLL_HAVE_IPSEC_MB
#include <intel-ipsec-mb.h>
#endif

namespace Atoll::transfer {

#ifdef ATOLL_HAVE_IPSEC_MB

namespace {

constexpr uint64_t kVectorAes = IMB_FEATURE_VAES | IMB_FEATURE_VPCLMULQDQ;

// One manager for the process: the direct GCM calls only dispatch through
// its function pointers, which are set once here and then only read, so
// every thread may share it.
struct Library {
  IMB_MGR* manager = nullptr;
  std::optional<std::string> unavailable;
  std::string description;
};

const Library& library() {
  static const Library instance = [] {
    Library lib;
    lib.manager = alloc_mb_mgr(0);
    if (lib.manager == nullptr) {
      lib.unavailable = "intel-ipsec-mb could not allocate its manager";
      return lib;
    }
    IMB_ARCH arch = IMB_ARCH_NONE;
    init_mb_mgr_auto(lib.manager, &arch);
    const int error = imb_get_errno(lib.manager);
    lib.description = std::string("intel-ipsec-mb ") + imb_get_version_str();
    if (error != 0) {
      lib.unavailable = lib.description + " did not start: " + imb_get_strerror(error);
    } else if (arch != IMB_ARCH_AVX512 || (lib.manager->features & kVectorAes) != kVectorAes) {
      // Elsewhere its AES-GCM runs on AES-NI like OpenSSL's, which then
      // keeps the records: nothing to gain from a second implementation.
      lib.unavailable = lib.description + ": this CPU lacks AVX-512 vector AES (VAES, VPCLMULQDQ)";
    } else {
      lib.description += " (AVX-512, VAES)";
    }
    return lib;
  }();
  return instance;
}

}  // namespace

// The key and the library's functions for its length, chosen once.
struct VaesGcm::State {
  alignas(64) gcm_key_data key;
  alignas(64) gcm_context_data context;
  aes_gcm_init_t init = nullptr;
  aes_gcm_enc_dec_update_t encryptUpdate = nullptr;
  aes_gcm_enc_dec_finalize_t encryptFinalize = nullptr;
  aes_gcm_enc_dec_t decrypt = nullptr;
};

std::optional<std::string> VaesGcm::unavailableReason() {
  return library().unavailable;
}

std::string VaesGcm::description() {
  return library().description;
}

Result<std::unique_ptr<VaesGcm>> VaesGcm::create(std::span<const uint8_t> key) {
  if (auto reason = unavailableReason()) {
    return Error::invalid("tls records", "vector AES-GCM", "", *reason);
  }
  if (key.size() != 16 && key.size() != 32) {
    return Error::invalid("tls records", "AES-GCM key length", std::to_string(key.size()),
                          "AES-GCM keys are 16 or 32 bytes");
  }
  const IMB_MGR& m = *library().manager;
  auto state = std::make_unique<State>();
  const bool aes256 = key.size() == 32;
  state->init = aes256 ? m.gcm256_init : m.gcm128_init;
  state->encryptUpdate = aes256 ? m.gcm256_enc_update : m.gcm128_enc_update;
  state->encryptFinalize = aes256 ? m.gcm256_enc_finalize : m.gcm128_enc_finalize;
  state->decrypt = aes256 ? m.gcm256_dec : m.gcm128_dec;
  (aes256 ? m.gcm256_pre : m.gcm128_pre)(key.data(), &state->key);
  return std::unique_ptr<VaesGcm>(new VaesGcm(std::move(state)));
}

void VaesGcm::seal(const std::array<uint8_t, 12>& iv, std::span<const uint8_t> aad,
                   std::span<const uint8_t> first, std::span<const uint8_t> second, uint8_t* out,
                   uint8_t* tag) {
  State& s = *state_;
  s.init(&s.key, &s.context, iv.data(), aad.data(), aad.size());
  if (!first.empty()) s.encryptUpdate(&s.key, &s.context, out, first.data(), first.size());
  if (!second.empty()) {
    s.encryptUpdate(&s.key, &s.context, out + first.size(), second.data(), second.size());
  }
  s.encryptFinalize(&s.key, &s.context, tag, 16);
}

bool VaesGcm::open(const std::array<uint8_t, 12>& iv, std::span<const uint8_t> aad,
                   std::span<const uint8_t> ciphertext, const uint8_t* tag, uint8_t* out) {
  State& s = *state_;
  uint8_t computed[16];
  s.decrypt(&s.key, &s.context, out, ciphertext.data(), ciphertext.size(), iv.data(), aad.data(),
            aad.size(), computed, sizeof computed);
  return CRYPTO_memcmp(computed, tag, sizeof computed) == 0;
}

VaesGcm::~VaesGcm() {
  if (state_) OPENSSL_cleanse(state_.get(), sizeof(State));
}

#else  // built without intel-ipsec-mb

struct VaesGcm::State {};

std::optional<std::string> VaesGcm::unavailableReason() {
  return "built without intel-ipsec-mb (libipsec-mb-dev)";
}

std::string VaesGcm::description() {
  return "intel-ipsec-mb (not built in)";
}

Result<std::unique_ptr<VaesGcm>> VaesGcm::create(std::span<const uint8_t>) {
  return Error::invalid("tls records", "vector AES-GCM", "", *unavailableReason());
}

void VaesGcm::seal(const std::array<uint8_t, 12>&, std::span<const uint8_t>,
                   std::span<const uint8_t>, std::span<const uint8_t>, uint8_t*, uint8_t*) {}

bool VaesGcm::open(const std::array<uint8_t, 12>&, std::span<const uint8_t>,
                   std::span<const uint8_t>, const uint8_t*, uint8_t*) {
  return false;
}

VaesGcm::~VaesGcm() = default;

#endif

VaesGcm::VaesGcm(std::unique_ptr<State> state) : state_(std::move(state)) {}

}  // namespace Atoll::transfer
