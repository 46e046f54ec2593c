#include "migrate/transfer/TlsChannel.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <climits>

#include "util/Fs.h"

namespace Atoll::transfer {

namespace {

// Ciphertext moves in pieces of this size so the memory BIOs stay small.
constexpr size_t kRecordBatch = 256 * 1024;

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
  std::shared_ptr<TlsContext> context(new TlsContext(ctx, role));
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

TlsChannel::TlsChannel(std::unique_ptr<SocketChannel> socket, std::shared_ptr<TlsContext> context)
    : socket_(std::move(socket)),
      context_(std::move(context)),
      receiveBuffer_(std::make_unique<uint8_t[]>(kRecordBatch)) {
  ssl_ = SSL_new(context_->native());
  input_ = BIO_new(BIO_s_mem());
  output_ = BIO_new(BIO_s_mem());
  // An empty input BIO means "try again later", not end of stream.
  BIO_set_mem_eof_return(input_, -1);
  SSL_set_bio(ssl_, input_, output_);  // the SSL owns both BIOs now
  if (context_->role() == TlsContext::Role::kServer) {
    SSL_set_accept_state(ssl_);
  } else {
    SSL_set_connect_state(ssl_);
  }
}

TlsChannel::~TlsChannel() {
  SSL_free(ssl_);
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
  char* pending = nullptr;
  long length = BIO_get_mem_data(output_, &pending);
  if (length <= 0) return ok();
  auto sent = socket_->sendAll(reinterpret_cast<uint8_t*>(pending), static_cast<size_t>(length));
  (void)BIO_reset(output_);
  return sent;
}

Result<void> TlsChannel::fillInput() {
  auto n = socket_->recvSome(receiveBuffer_.get(), kRecordBatch);
  if (!n) return n.error();
  if (BIO_write(input_, receiveBuffer_.get(), static_cast<int>(*n)) != static_cast<int>(*n)) {
    return Error::invalid("tls", socket_->peer(), "", "cannot buffer received records");
  }
  return ok();
}

Result<std::unique_ptr<TlsChannel>> TlsChannel::handshake(std::unique_ptr<SocketChannel> socket,
                                                          std::shared_ptr<TlsContext> context) {
  std::unique_ptr<TlsChannel> channel(new TlsChannel(std::move(socket), std::move(context)));
  ERR_clear_error();
  for (;;) {
    int rc = SSL_do_handshake(channel->ssl_);
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
  return channel;
}

bool TlsChannel::inputPending() const {
  return SSL_pending(ssl_) > 0 || BIO_ctrl_pending(input_) > 0 || socket_->inputPending();
}

Result<void> TlsChannel::sendAll(const uint8_t* data, size_t length) {
  size_t done = 0;
  while (done < length) {
    int chunk = static_cast<int>(std::min(length - done, kRecordBatch));
    ERR_clear_error();
    int rc = SSL_write(ssl_, data + done, chunk);
    if (rc <= 0) return tlsError("tls write", rc);
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
