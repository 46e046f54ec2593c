#pragma once
// TLS 1.3 with mutual authentication over a SocketChannel. OpenSSL runs on
// memory BIOs: it encrypts and decrypts in user space while the socket I/O
// stays on io_uring. Kernel TLS (TCP_ULP "tls") is probed and reported; this
// build keeps the record layer in user space.
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

 private:
  TlsContext(SSL_CTX* context, Role role) : context_(context), role_(role) {}
  SSL_CTX* context_;
  Role role_;
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
  uint64_t wireBytesSent() const override { return socket_->wireBytesSent(); }
  uint64_t wireBytesReceived() const override { return socket_->wireBytesReceived(); }
  bool inputPending() const override;
  // Subject of the verified peer certificate.
  const std::string& peerSubject() const { return peerSubject_; }

 private:
  TlsChannel(std::unique_ptr<SocketChannel> socket, std::shared_ptr<TlsContext> context);
  Result<void> flushOutput();
  Result<void> fillInput();
  Error tlsError(const char* operation, int rc);

  std::unique_ptr<SocketChannel> socket_;
  std::shared_ptr<TlsContext> context_;
  SSL* ssl_ = nullptr;
  BIO* input_ = nullptr;   // ciphertext received, read by OpenSSL
  BIO* output_ = nullptr;  // ciphertext produced by OpenSSL, to send
  std::unique_ptr<uint8_t[]> receiveBuffer_;
  std::string peerSubject_;
};

}  // namespace Atoll::transfer
