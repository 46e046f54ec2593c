#pragma once
// TLS 1.3 with mutual authentication over a SocketChannel.
//
// Where the kernel offers TLS (TCP_ULP "tls", CONFIG_TLS) the handshake runs
// with OpenSSL on the socket itself and SSL_OP_ENABLE_KTLS, so that OpenSSL
// installs the negotiated keys with setsockopt(TLS_TX / TLS_RX) once the
// handshake ends; from then on the kernel encrypts and decrypts and the
// record layer costs no user-space copy. Which directions the kernel took is
// reported by recordLayer(): with OpenSSL 3.0 (Debian 12) only sending, as
// that OpenSSL gives Linux no TLS 1.3 receive keys, so received records are
// opened by Atoll's record layer below, reading the socket on io_uring
// (checked in the test VM, KernelTlsVmTest, against either kind of peer).
//
// Elsewhere OpenSSL runs the handshake on a BIO pair whose buffers the
// socket reads into and sends from, and then hands the application traffic
// secrets over (its key-log callback) to Atoll's own record layer
// (TlsRecords.h), which seals and opens records in one pass between the
// caller's buffers and huge-page socket buffers while the socket I/O stays
// on io_uring. OpenSSL's record layer over the pair remains the fallback
// (and can be chosen, TlsConfig::opensslRecords).
#include <atomic>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "migrate/transfer/Channel.h"
#include "migrate/transfer/TlsRecords.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct bio_st BIO;

namespace Atoll::transfer {

struct TlsConfig {
  std::string certificatePath;
  std::string privateKeyPath;
  std::string caPath;  // peers must present a certificate signed by this CA
  // Hand the record layer to the kernel after the handshake where it offers
  // kernel TLS (TCP_ULP "tls"); otherwise, or when false, user space.
  bool kernelTls = true;
  // Without kernel TLS: protect records with OpenSSL's own record layer over
  // the BIO pair instead of Atoll's. The wire format is the same; it costs
  // two more copies per byte on each end. For comparison and as a fallback.
  bool opensslRecords = false;
  // With Atoll's records: run their cipher with OpenSSL even where
  // intel-ipsec-mb's vector AES-GCM could (VaesGcm). For comparison.
  bool opensslCipher = false;
  // TLS 1.3 cipher suites in order of preference, in OpenSSL's list format;
  // empty: AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305.
  std::string cipherSuites;
  bool enabled() const { return !certificatePath.empty(); }
};

// Whether the running kernel offers the "tls" upper-layer protocol; where it
// is a module not loaded yet, asks the kernel to load it (needs
// CAP_NET_ADMIN, as atolld has).
bool kernelTlsAvailable();

class TlsContext {
 public:
  enum class Role { kClient, kServer };
  // Loads certificate, key and CA; refuses a key that does not match the
  // certificate. Both roles require and verify the peer's certificate.
  static Result<std::shared_ptr<TlsContext>> create(const TlsConfig& config, Role role);
  ~TlsContext();
  SSL_CTX* native() const { return context_; }
  Role role() const { return role_; }
  bool kernelTls() const { return kernelTls_; }
  bool opensslRecords() const { return opensslRecords_; }
  CipherEngine cipherEngine() const { return cipherEngine_; }

 private:
  TlsContext(SSL_CTX* context, Role role, const TlsConfig& config)
      : context_(context),
        role_(role),
        kernelTls_(config.kernelTls),
        opensslRecords_(config.opensslRecords),
        cipherEngine_(config.opensslCipher ? CipherEngine::kOpenssl : CipherEngine::kFastest) {}
  SSL_CTX* context_;
  Role role_;
  bool kernelTls_;
  bool opensslRecords_;
  CipherEngine cipherEngine_;
};

class TlsChannel : public Channel {
 public:
  // Runs the handshake; a peer without a valid certificate is refused here,
  // before any data flows.
  static Result<std::unique_ptr<TlsChannel>> handshake(std::unique_ptr<SocketChannel> socket,
                                                       std::shared_ptr<TlsContext> context);
  ~TlsChannel() override;
  Result<void> sendAll(const uint8_t* data, size_t length) override;
  Result<void> recvExact(uint8_t* out, size_t length) override;
  bool encrypted() const override { return true; }
  const std::string& peer() const override { return socket_->peer(); }
  uint64_t wireBytesSent() const override;
  uint64_t wireBytesReceived() const override;
  bool inputPending() const override;
  bool socketReadable() const override { return socket_->socketReadable(); }
  // Subject of the verified peer certificate.
  const std::string& peerSubject() const { return peerSubject_; }
  // Where records are encrypted and decrypted, in words, for logs and
  // reports: "kernel TLS", "kernel TLS for sending, user space for
  // receiving" and so on.
  std::string recordLayer() const;
  bool kernelSend() const { return kernelSend_; }
  bool kernelReceive() const { return kernelReceive_; }
  // The negotiated TLS 1.3 cipher suite, by its IANA name.
  std::string cipherSuite() const;
  // Whether Atoll's own record layer protects the application data.
  bool atollRecords() const { return sealing_.has_value(); }
  // Moves this end's sending key on: a KeyUpdate goes out before the next
  // data (done by itself every kRecordsPerKey records). With `askPeerToo`
  // the peer is asked to move its own sending key on as well. Refused where
  // kernel TLS seals what this end sends (the kernel keeps its first key);
  // a peer's request for it then ends the read that met it.
  Result<void> updateSendingKey(bool askPeerToo = false);
  // KeyUpdates each way so far under Atoll's record layer (0 with OpenSSL's).
  uint64_t sendingKeyGeneration() const { return sealing_ ? sealing_->generation() : 0; }
  uint64_t receivingKeyGeneration() const { return opening_ ? opening_->generation() : 0; }
  // Called by OpenSSL's key-log callback with each secret of the handshake.
  void keepTrafficSecret(std::string_view label, std::span<const uint8_t> secret);

 private:
  TlsChannel(std::unique_ptr<SocketChannel> socket, std::shared_ptr<TlsContext> context,
             bool overSocket);
  Result<void> flushOutput();
  Result<void> fillInput();
  Error tlsError(const char* operation, int rc);
  // After the handshake: moves the application data to Atoll's record
  // layer, with any ciphertext already received; with `sending` false only
  // what is received (the kernel encrypts what is sent). An explanation when
  // that cannot be done (the session then keeps OpenSSL's records).
  std::optional<std::string> takeRecordLayer(bool sending);
  // Wipes the traffic secrets kept from the key log (done once the record
  // layer is chosen, and at destruction).
  void forgetTrafficSecrets();
  Result<void> sendRecords(const uint8_t* data, size_t length);
  Result<void> receiveRecords(uint8_t* out, size_t length);
  // Makes the next whole record available at buffers_.data(1) + rxStart_;
  // its length. `needed`: plaintext bytes the caller still waits for.
  Result<size_t> nextRecord(size_t needed);
  // Acts on a protected handshake or alert record; application data is
  // handled by the caller.
  Result<void> onControlRecord(ContentType type, std::span<const uint8_t> content);

  std::unique_ptr<SocketChannel> socket_;
  std::shared_ptr<TlsContext> context_;
  SSL* ssl_ = nullptr;
  BIO* network_ = nullptr;  // our end of the pair: ciphertext in and out
  // OpenSSL reads and writes the socket itself (socket BIO): the set-up that
  // lets it hand the keys to the kernel after the handshake.
  bool overSocket_ = false;
  bool kernelSend_ = false;
  bool kernelReceive_ = false;
  std::string peerSubject_;

  // Atoll's record layer (empty while OpenSSL's is in use).
  std::vector<uint8_t> clientSecret_, serverSecret_;  // until the handshake ends
  std::optional<RecordProtection> sealing_, opening_;
  // Huge-page buffers: sealed records on their way out (first; none where
  // the kernel seals), and received ciphertext (last); plus room for one
  // record whose plaintext does not fit the caller's buffer.
  BufferPool buffers_;
  uint8_t* receiveBuffer() const { return buffers_.data(buffers_.count() - 1); }
  size_t rxStart_ = 0, rxEnd_ = 0;
  std::vector<uint8_t> spill_;
  size_t spillStart_ = 0, spillEnd_ = 0;
  // A KeyUpdate to send before the next data: kKeyUpdateNone, or one
  // asked for by the peer (update_requested) or by updateSendingKey(). Set
  // by the receiving side, which may run on another thread than the sender.
  std::atomic<int> keyUpdateDue_{0};
  std::string fallbackReason_;
};

}  // namespace Atoll::transfer
