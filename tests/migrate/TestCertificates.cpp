#include "TestCertificates.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <memory>

namespace Atoll::transfer::testing {
namespace {

template <auto Free>
struct Deleter {
  template <typename T>
  void operator()(T* p) const {
    Free(p);
  }
};
using Key = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using Certificate = std::unique_ptr<X509, Deleter<X509_free>>;
using Extension = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;
using Bio = std::unique_ptr<BIO, Deleter<BIO_free_all>>;

constexpr long kValidSeconds = 2 * 24 * 60 * 60;
// Peers whose clocks run a little behind this host still accept the
// certificates right after they are made.
constexpr long kClockSkewSeconds = 60;

struct Identity {
  Key key;
  Certificate certificate;
};

// Extensions are built from their config-string form with a null config, so
// nothing is read from openssl.cnf.
bool addExtension(X509* certificate, X509V3_CTX* context, int nid, const char* value) {
  Extension extension(X509V3_EXT_nconf_nid(nullptr, context, nid, value));
  return extension != nullptr && X509_add_ext(certificate, extension.get(), -1) == 1;
}

// A CA when `issuer` is null (self-signed), otherwise a leaf signed by it.
bool issue(const char* commonName, const Identity* issuer, Identity& out) {
  Key key(EVP_EC_gen("P-256"));
  Certificate certificate(X509_new());
  if (key == nullptr || certificate == nullptr) return false;
  X509* cert = certificate.get();

  // RFC 5280 wants a positive serial of at most 20 octets; distinct random
  // serials keep verifiers from confusing certificates of different runs.
  uint64_t serial = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&serial), sizeof serial) != 1) return false;
  serial &= ~(uint64_t{1} << 63);
  if (serial == 0) serial = 1;

  X509_NAME* subject = X509_get_subject_name(cert);
  if (X509_set_version(cert, X509_VERSION_3) != 1 ||
      ASN1_INTEGER_set_uint64(X509_get_serialNumber(cert), serial) != 1 ||
      X509_gmtime_adj(X509_getm_notBefore(cert), -kClockSkewSeconds) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert), kValidSeconds) == nullptr ||
      X509_NAME_add_entry_by_NID(subject, NID_commonName, MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>(commonName), -1, -1,
                                 0) != 1 ||
      X509_set_pubkey(cert, key.get()) != 1) {
    return false;
  }

  X509* issuerCert = issuer != nullptr ? issuer->certificate.get() : cert;
  EVP_PKEY* signingKey = issuer != nullptr ? issuer->key.get() : key.get();
  if (X509_set_issuer_name(cert, X509_get_subject_name(issuerCert)) != 1) return false;
  X509V3_CTX context;
  X509V3_set_ctx(&context, issuerCert, cert, nullptr, nullptr, 0);
  bool extended =
      issuer == nullptr
          ? addExtension(cert, &context, NID_basic_constraints, "critical,CA:TRUE") &&
                addExtension(cert, &context, NID_key_usage, "critical,keyCertSign,cRLSign") &&
                addExtension(cert, &context, NID_subject_key_identifier, "hash")
          : addExtension(cert, &context, NID_basic_constraints, "CA:FALSE") &&
                addExtension(cert, &context, NID_subject_key_identifier, "hash") &&
                addExtension(cert, &context, NID_authority_key_identifier, "keyid:always");
  if (!extended || X509_sign(cert, signingKey, EVP_sha256()) == 0) return false;

  out.key = std::move(key);
  out.certificate = std::move(certificate);
  return true;
}

// Opened with the mode given (not the umask's default) so private keys are
// never readable by others, not even briefly.
template <typename Write>
bool writePem(const std::string& path, mode_t mode, Write write) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    // Queued with OpenSSL's own errors so the caller's report names the file.
    ERR_raise_data(ERR_LIB_SYS, errno, "open %s", path.c_str());
    return false;
  }
  Bio bio(BIO_new_fd(fd, BIO_CLOSE));
  if (bio == nullptr) {
    ::close(fd);
    return false;
  }
  // A fd BIO writes straight through, so a write that succeeded is on disk.
  return write(bio.get()) == 1;
}

bool save(const std::string& dir, const std::string& name, const Identity& identity) {
  std::string base = dir + "/" + name;
  return writePem(base + ".key", 0600,
                  [&](BIO* bio) {
                    return PEM_write_bio_PrivateKey(bio, identity.key.get(), nullptr, nullptr, 0,
                                                    nullptr, nullptr);
                  }) &&
         writePem(base + ".crt", 0644,
                  [&](BIO* bio) { return PEM_write_bio_X509(bio, identity.certificate.get()); });
}

bool makeAll(const std::string& dir) {
  Identity ca;
  Identity rogue;
  if (!issue("ca", nullptr, ca) || !save(dir, "ca", ca)) return false;
  if (!issue("rogue", nullptr, rogue) || !save(dir, "rogue", rogue)) return false;
  struct Leaf {
    const char* name;
    const Identity* issuer;
  };
  for (const Leaf& leaf : {Leaf{"server", &ca}, Leaf{"client", &ca}, Leaf{"intruder", &rogue}}) {
    Identity identity;
    if (!issue(leaf.name, leaf.issuer, identity) || !save(dir, leaf.name, identity)) return false;
  }
  return true;
}

}  // namespace

bool makeTestCertificates(const std::string& dir) {
  if (makeAll(dir)) return true;
  // The callers only see false; the error queue says which step failed, and
  // emptying it keeps stale errors from misleading later TLS calls.
  ERR_print_errors_fp(stderr);
  return false;
}

}  // namespace Atoll::transfer::testing
