#pragma once
// TLS 1.3 with mutual authentication over a SocketChannel.
//
// Where the kernel offers TLS (TCP_ULP "tls", CONFIG_TLS) the handshake runs
// with OpenSSL on the socket itself and SSL_OP_ENABLE_KTLS, so that OpenSSL
// installs the negotiated keys with setsockopt(TLS_TX / TLS_RX) once the
// handshake ends; from then on the kernel encrypts and decrypts and the
// record layer costs no user-space copy. Which directions the kernel took is
// reported by recordLayer(). Elsewhere OpenSSL runs on a BIO pair whose
// buffers the socket reads into and sends from: it encrypts and decrypts in
// user space while the socket I/O stays on io_uring.
#include <memory>
#include <string>

#include "migrate/transfer/Channel.h"

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
  bool enabled() const { return !certificatePath.empty(); }
};

// Whether the running kernel offers the "tls" upper-layer protocol.
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

 private:
  TlsContext(SSL_CTX* context, Role role, bool kernelTls)
      : context_(context), role_(role), kernelTls_(kernelTls) {}
  SSL_CTX* context_;
  Role role_;
  bool kernelTls_;
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

 private:
  TlsChannel(std::unique_ptr<SocketChannel> socket, std::shared_ptr<TlsContext> context,
             bool overSocket);
  Result<void> flushOutput();
  Result<void> fillInput();
  Error tlsError(const char* operation, int rc);

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
};

}  // namespace Atoll::transfer
