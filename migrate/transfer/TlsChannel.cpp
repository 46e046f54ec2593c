#include "migrate/transfer/TlsChannel.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <climits>

#include "util/Fs.h"

namespace Atoll::transfer {

namespace {

// Plaintext handed to OpenSSL per SSL_write: 64 full 16 KiB records, one
// socket send of ciphertext.
constexpr size_t kRecordBatch = 1024 * 1024;
// Each direction of the BIO pair holds a batch of ciphertext (records carry
// 22 bytes of overhead each) with room to spare; the socket reads into and
// sends from this buffer directly, so no ciphertext is copied in user space.
constexpr size_t kPairBuffer = 2 * kRecordBatch + 64 * 1024;

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

}  // namespace

bool kernelTlsAvailable() {
  auto ulps = readFile("/proc/sys/net/ipv4/tcp_available_ulp");
  if (!ulps) return false;
  std::string_view list = *ulps;
  size_t at = 0;
  while (at < list.size()) {
    size_t end = list.find_first_of(" \n", at);
    if (end == std::string_view::npos) end = list.size();
    if (list.substr(at, end - at) == "tls") return true;
    at = end + 1;
  }
  return false;
}

Result<std::shared_ptr<TlsContext>> TlsContext::create(const TlsConfig& config, Role role) {
  for (const auto* path : {&config.certificatePath, &config.privateKeyPath, &config.caPath}) {
    if (path->empty()) {
      return Error::invalid("tls", "config", "",
                            "certificate, private key and CA paths are all required");
    }
  }
  SSL_CTX* ctx = SSL_CTX_new(role == Role::kServer ? TLS_server_method() : TLS_client_method());
  if (ctx == nullptr) return Error::invalid("tls", "SSL_CTX_new", "", drainOpensslErrors());
  std::shared_ptr<TlsContext> context(new TlsContext(ctx, role, config.kernelTls));
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  // No session tickets: sessions are not resumed, and a ticket arriving after
  // the handshake would only be noise in the stream.
  SSL_CTX_set_num_tickets(ctx, 0);
  if (SSL_CTX_use_certificate_chain_file(ctx, config.certificatePath.c_str()) != 1) {
    return Error::invalid("tls", config.certificatePath, "",
                          "cannot load certificate: " + drainOpensslErrors());
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, config.privateKeyPath.c_str(), SSL_FILETYPE_PEM) != 1) {
    return Error::invalid("tls", config.privateKeyPath, "",
                          "cannot load private key: " + drainOpensslErrors());
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    return Error::invalid("tls", config.privateKeyPath, "",
                          "private key does not match the certificate " + config.certificatePath);
  }
  if (SSL_CTX_load_verify_locations(ctx, config.caPath.c_str(), nullptr) != 1) {
    return Error::invalid("tls", config.caPath, "", "cannot load CA: " + drainOpensslErrors());
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  return context;
}

TlsContext::~TlsContext() {
  SSL_CTX_free(context_);
}

TlsChannel::TlsChannel(std::unique_ptr<SocketChannel> socket, std::shared_ptr<TlsContext> context,
                       bool overSocket)
    : socket_(std::move(socket)), context_(std::move(context)), overSocket_(overSocket) {
  ssl_ = SSL_new(context_->native());
  if (overSocket_) {
    SSL_set_options(ssl_, SSL_OP_ENABLE_KTLS);
    BIO* bio = BIO_new_socket(socket_->fd(), BIO_NOCLOSE);
    SSL_set_bio(ssl_, bio, bio);
  } else {
    BIO* internal = nullptr;
    BIO_new_bio_pair(&internal, kPairBuffer, &network_, kPairBuffer);
    SSL_set_bio(ssl_, internal, internal);  // the SSL owns its end of the pair
  }
  if (context_->role() == TlsContext::Role::kServer) {
    SSL_set_accept_state(ssl_);
  } else {
    SSL_set_connect_state(ssl_);
  }
}

TlsChannel::~TlsChannel() {
  SSL_free(ssl_);
  if (network_ != nullptr) BIO_free(network_);
}

std::string TlsChannel::recordLayer() const {
  if (kernelSend_ && kernelReceive_) return "kernel TLS";
  if (kernelSend_) return "kernel TLS for sending, user space (OpenSSL) for receiving";
  if (kernelReceive_) return "kernel TLS for receiving, user space (OpenSSL) for sending";
  if (overSocket_) return "user space (OpenSSL; the kernel refused the keys)";
  return "user space (OpenSSL over io_uring)";
}

uint64_t TlsChannel::wireBytesSent() const {
  // Over the socket BIO OpenSSL does the I/O: its count (plaintext where the
  // kernel encrypts).
  if (overSocket_) return BIO_number_written(SSL_get_wbio(ssl_));
  return socket_->wireBytesSent();
}

uint64_t TlsChannel::wireBytesReceived() const {
  if (overSocket_) return BIO_number_read(SSL_get_rbio(ssl_));
  return socket_->wireBytesReceived();
}

Error TlsChannel::tlsError(const char* operation, int rc) {
  int code = SSL_get_error(ssl_, rc);
  std::string detail = drainOpensslErrors();
  long verify = SSL_get_verify_result(ssl_);
  if (verify != X509_V_OK) {
    detail += std::string(detail.empty() ? "" : "; ") +
              "peer certificate: " + X509_verify_cert_error_string(verify);
  }
  if (detail.empty()) detail = "SSL error " + std::to_string(code);
  return Error::invalid(operation, socket_->peer(), "", detail);
}

Result<void> TlsChannel::flushOutput() {
  if (overSocket_) return ok();  // OpenSSL wrote to the socket itself
  for (;;) {
    char* pending = nullptr;
    int length = BIO_nread0(network_, &pending);
    if (length <= 0) return ok();
    if (auto sent = socket_->sendAll(reinterpret_cast<uint8_t*>(pending), length); !sent) {
      return sent;
    }
    (void)BIO_nread(network_, &pending, length);
  }
}

Result<void> TlsChannel::fillInput() {
  char* space = nullptr;
  int room = BIO_nwrite0(network_, &space);
  if (room <= 0) {
    return Error::invalid("tls", socket_->peer(), "", "cannot buffer received records");
  }
  auto n = socket_->recvSome(reinterpret_cast<uint8_t*>(space), static_cast<size_t>(room));
  if (!n) return n.error();
  (void)BIO_nwrite(network_, &space, static_cast<int>(*n));
  return ok();
}

Result<std::unique_ptr<TlsChannel>> TlsChannel::handshake(std::unique_ptr<SocketChannel> socket,
                                                          std::shared_ptr<TlsContext> context) {
  bool kernel = context->kernelTls() && kernelTlsAvailable();
  if (kernel) {
    // OpenSSL blocks on the socket itself; the idle timeout bounds each wait.
    auto idle = socket->idleTimeout();
    timeval limit{static_cast<time_t>(idle.count() / 1000),
                  static_cast<suseconds_t>(idle.count() % 1000 * 1000)};
    ::setsockopt(socket->fd(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    ::setsockopt(socket->fd(), SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  }
  std::unique_ptr<TlsChannel> channel(
      new TlsChannel(std::move(socket), std::move(context), kernel));
  ERR_clear_error();
  for (;;) {
    int rc = SSL_do_handshake(channel->ssl_);
    if (channel->overSocket_) {
      if (rc == 1) break;
      return channel->tlsError("tls handshake", rc);
    }
    // Send what OpenSSL produced even on failure: that is the alert telling
    // the peer why it was refused.
    auto flushed = channel->flushOutput();
    if (rc == 1) {
      if (!flushed) return flushed.error();
      break;
    }
    int code = SSL_get_error(channel->ssl_, rc);
    if (code != SSL_ERROR_WANT_READ) return channel->tlsError("tls handshake", rc);
    if (!flushed) return flushed.error();
    if (auto r = channel->fillInput(); !r) {
      Error e = r.error();
      e.detail += " (during the TLS handshake)";
      return e;
    }
  }
  if (SSL_version(channel->ssl_) != TLS1_3_VERSION) {
    return Error::invalid("tls handshake", channel->peer(), SSL_get_version(channel->ssl_),
                          "peer did not negotiate TLS 1.3");
  }
  X509* cert = SSL_get1_peer_certificate(channel->ssl_);
  if (cert == nullptr || SSL_get_verify_result(channel->ssl_) != X509_V_OK) {
    if (cert != nullptr) X509_free(cert);
    return Error::invalid("tls handshake", channel->peer(), "",
                          "peer presented no verified certificate");
  }
  char subject[256];
  X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof subject);
  channel->peerSubject_ = subject;
  X509_free(cert);
  if (channel->overSocket_) {
    channel->kernelSend_ = BIO_get_ktls_send(SSL_get_wbio(channel->ssl_)) != 0;
    channel->kernelReceive_ = BIO_get_ktls_recv(SSL_get_rbio(channel->ssl_)) != 0;
  }
  return channel;
}

bool TlsChannel::inputPending() const {
  if (overSocket_) return SSL_pending(ssl_) > 0 || socket_->inputPending();
  return SSL_pending(ssl_) > 0 || BIO_ctrl_pending(SSL_get_rbio(ssl_)) > 0 ||
         socket_->inputPending();
}

Result<void> TlsChannel::sendAll(const uint8_t* data, size_t length) {
  size_t done = 0;
  while (done < length) {
    int chunk = static_cast<int>(std::min(length - done, kRecordBatch));
    ERR_clear_error();
    int rc = SSL_write(ssl_, data + done, chunk);
    if (rc <= 0) {
      // The pair's buffer is full: send what it holds, then repeat the same
      // SSL_write as OpenSSL requires.
      if (overSocket_ || SSL_get_error(ssl_, rc) != SSL_ERROR_WANT_WRITE) {
        return tlsError("tls write", rc);
      }
      if (auto f = flushOutput(); !f) return f.error();
      continue;
    }
    done += static_cast<size_t>(rc);
    if (auto f = flushOutput(); !f) return f.error();
  }
  return ok();
}

Result<void> TlsChannel::recvExact(uint8_t* out, size_t length) {
  size_t done = 0;
  while (done < length) {
    ERR_clear_error();
    int want = static_cast<int>(std::min<size_t>(length - done, INT_MAX));
    int rc = SSL_read(ssl_, out + done, want);
    if (rc > 0) {
      done += static_cast<size_t>(rc);
      continue;
    }
    int code = SSL_get_error(ssl_, rc);
    if (code == SSL_ERROR_WANT_READ && overSocket_) {
      // SO_RCVTIMEO expired on the socket OpenSSL reads itself.
      return Error::invalid("tls read", socket_->peer(),
                            std::to_string(socket_->idleTimeout().count()) + " ms",
                            "no progress on the connection within the idle timeout "
                            "(link down or peer stalled)");
    }
    if (code == SSL_ERROR_WANT_READ) {
      if (auto f = flushOutput(); !f) return f.error();
      if (auto r = fillInput(); !r) return r.error();
      continue;
    }
    if (code == SSL_ERROR_ZERO_RETURN) {
      return Error::invalid("tls read", socket_->peer(), "", "the peer closed the TLS session");
    }
    return tlsError("tls read", rc);
  }
  return ok();
}

}  // namespace Atoll::transfer
