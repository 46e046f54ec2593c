#include "migrate/transfer/TlsChannel.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "util/Fs.h"

namespace Atoll::transfer {

namespace {

// Plaintext per SSL_write, or sealed by Atoll's records per socket send:
// 64 full 16 KiB records, one socket send of ciphertext.
constexpr size_t kRecordBatch = 1024 * 1024;
// Each direction of the BIO pair holds a batch of ciphertext (records carry
// 22 bytes of overhead each) with room to spare; the socket reads into and
// sends from this buffer directly, so no ciphertext is copied in user space.
constexpr size_t kPairBuffer = 2 * kRecordBatch + 64 * 1024;
// Atoll's record layer: a batch sealed into one send, with room for a
// KeyUpdate record; received ciphertext is read in pieces of up to 2 MiB.
constexpr size_t kSealedBatch =
    kRecordBatch + (kRecordBatch / kMaxRecordPlaintext + 4) * kRecordOverhead;
constexpr size_t kReceiveBuffer = 2 * kRecordBatch;
// How OpenSSL's key log names the application traffic secrets.
constexpr std::string_view kClientSecretLabel = "CLIENT_TRAFFIC_SECRET_0";
constexpr std::string_view kServerSecretLabel = "SERVER_TRAFFIC_SECRET_0";
constexpr const char* kDefaultCipherSuites =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
// What keyUpdateDue_ holds.
constexpr int kKeyUpdateNone = 0;
constexpr int kKeyUpdate = 1;
constexpr int kKeyUpdateAskingPeer = 2;

// OpenSSL's key log hands over every secret of the handshake as a line
// "LABEL <client random, hex> <secret, hex>"; the channel keeps the
// application traffic secrets (and nothing is logged).
void keepSecretFromKeyLog(const SSL* ssl, const char* line) {
  auto* channel = static_cast<TlsChannel*>(SSL_get_app_data(ssl));
  if (channel == nullptr) return;
  std::string_view text(line);
  size_t first = text.find(' ');
  size_t second = first == std::string_view::npos ? first : text.find(' ', first + 1);
  if (second == std::string_view::npos) return;
  std::string_view label = text.substr(0, first);
  if (label != kClientSecretLabel && label != kServerSecretLabel) return;
  std::string_view hex = text.substr(second + 1);
  std::vector<uint8_t> secret;
  secret.reserve(hex.size() / 2);
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    int high = nibble(hex[i]), low = nibble(hex[i + 1]);
    if (high < 0 || low < 0) return;
    secret.push_back(static_cast<uint8_t>(high << 4 | low));
  }
  channel->keepTrafficSecret(label, secret);
  OPENSSL_cleanse(secret.data(), secret.size());
}

}  // namespace

namespace {

constexpr const char* kAvailableUlps = "/proc/sys/net/ipv4/tcp_available_ulp";
constexpr std::string_view kTlsUlp = "tls";

bool tlsUlpListed() {
  auto ulps = readFile(kAvailableUlps);
  if (!ulps) return false;
  std::string_view list = *ulps;
  size_t at = 0;
  while (at < list.size()) {
    size_t end = list.find_first_of(" \n", at);
    if (end == std::string_view::npos) end = list.size();
    if (list.substr(at, end - at) == kTlsUlp) return true;
    at = end + 1;
  }
  return false;
}

}  // namespace

bool kernelTlsAvailable() {
  if (tlsUlpListed()) return true;
  // Distribution kernels build TLS as a module (CONFIG_TLS=m) that nothing
  // loads until a socket asks for it, and the list above names only loaded
  // ULPs. Asking on a throwaway socket makes the kernel load it
  // ("tcp-ulp-tls", for a caller with CAP_NET_ADMIN) before it refuses the
  // unconnected socket with ENOTCONN; without this a stock host would never
  // get kernel TLS.
  int probe = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe < 0) return false;
  (void)::setsockopt(probe, SOL_TCP, TCP_ULP, kTlsUlp.data(), kTlsUlp.size());
  ::close(probe);
  return tlsUlpListed();
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
  std::shared_ptr<TlsContext> context(new TlsContext(ctx, role, config));
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
  // AES-128-GCM first by default: the fastest where the CPU has AES
  // instructions (the client's order decides).
  const std::string suites =
      config.cipherSuites.empty() ? kDefaultCipherSuites : config.cipherSuites;
  if (SSL_CTX_set_ciphersuites(ctx, suites.c_str()) != 1) {
    return Error::invalid(
        "tls", "cipher suites", suites,
        "not a list of TLS 1.3 cipher suites OpenSSL knows: " + drainOpensslErrors());
  }
  if (!config.opensslRecords) SSL_CTX_set_keylog_callback(ctx, keepSecretFromKeyLog);
  return context;
}

TlsContext::~TlsContext() {
  SSL_CTX_free(context_);
}

TlsChannel::TlsChannel(std::unique_ptr<SocketChannel> socket, std::shared_ptr<TlsContext> context,
                       bool overSocket)
    : socket_(std::move(socket)), context_(std::move(context)), overSocket_(overSocket) {
  ssl_ = SSL_new(context_->native());
  SSL_set_app_data(ssl_, this);
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
  forgetTrafficSecrets();
  SSL_free(ssl_);
  if (network_ != nullptr) BIO_free(network_);
}

std::string TlsChannel::recordLayer() const {
  if (sealing_) {
    return "user space (Atoll's records over io_uring; cipher: " + sealing_->engine() + ")";
  }
  if (opening_) {
    return std::string(kernelSend_ ? "kernel TLS" : "user space (OpenSSL)") +
           " for sending, user space (Atoll's records over io_uring; cipher: " +
           opening_->engine() + ") for receiving";
  }
  if (kernelSend_ && kernelReceive_) return "kernel TLS";
  if (kernelSend_) {
    return "kernel TLS for sending, user space (OpenSSL) for receiving" +
           (fallbackReason_.empty() ? std::string() : " (" + fallbackReason_ + ")");
  }
  if (kernelReceive_) return "kernel TLS for receiving, user space (OpenSSL) for sending";
  if (overSocket_) return "user space (OpenSSL; the kernel refused the keys)";
  if (!fallbackReason_.empty()) {
    return "user space (OpenSSL over io_uring: " + fallbackReason_ + ")";
  }
  return "user space (OpenSSL over io_uring)";
}

std::string TlsChannel::cipherSuite() const {
  const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl_);
  return cipher != nullptr ? SSL_CIPHER_standard_name(cipher) : "";
}

uint64_t TlsChannel::wireBytesSent() const {
  // Over the socket BIO OpenSSL does the I/O: its count (plaintext where the
  // kernel encrypts).
  if (overSocket_) return BIO_number_written(SSL_get_wbio(ssl_));
  return socket_->wireBytesSent();
}

uint64_t TlsChannel::wireBytesReceived() const {
  if (overSocket_ && !opening_) return BIO_number_read(SSL_get_rbio(ssl_));
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
  // The kernel's TLS sits on TCP only (a unix socket pair gets user-space
  // records, as everywhere without kernel TLS).
  int domain = 0;
  socklen_t domainLength = sizeof domain;
  const bool tcp = ::getsockopt(socket->fd(), SOL_SOCKET, SO_DOMAIN, &domain, &domainLength) == 0 &&
                   (domain == AF_INET || domain == AF_INET6);
  bool kernel = context->kernelTls() && tcp && kernelTlsAvailable();
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
    // OpenSSL 3.0 gives the kernel no TLS 1.3 receive keys. Left to it, it
    // would read the socket record by record (header, then body: two reads
    // per 16 KiB) and copy out of its own buffer; Atoll's records receive in
    // batches on io_uring and open straight into the caller's buffer.
    if (!channel->kernelReceive_ && !channel->context_->opensslRecords()) {
      if (auto reason = channel->takeRecordLayer(false)) channel->fallbackReason_ = *reason;
    }
  } else if (!channel->context_->opensslRecords()) {
    if (auto reason = channel->takeRecordLayer(true)) channel->fallbackReason_ = *reason;
  }
  channel->forgetTrafficSecrets();
  return channel;
}

bool TlsChannel::inputPending() const {
  if (opening_) return spillEnd_ > spillStart_ || rxEnd_ > rxStart_ || socket_->inputPending();
  if (overSocket_) return SSL_pending(ssl_) > 0 || socket_->inputPending();
  return SSL_pending(ssl_) > 0 || BIO_ctrl_pending(SSL_get_rbio(ssl_)) > 0 ||
         socket_->inputPending();
}

Result<void> TlsChannel::sendAll(const uint8_t* data, size_t length) {
  if (sealing_) return sendRecords(data, length);
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
  if (opening_) return receiveRecords(out, length);
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

void TlsChannel::keepTrafficSecret(std::string_view label, std::span<const uint8_t> secret) {
  auto& kept = label == kClientSecretLabel ? clientSecret_ : serverSecret_;
  OPENSSL_cleanse(kept.data(), kept.size());
  kept.assign(secret.begin(), secret.end());
}

void TlsChannel::forgetTrafficSecrets() {
  for (auto* secret : {&clientSecret_, &serverSecret_}) {
    OPENSSL_cleanse(secret->data(), secret->size());
    secret->clear();
  }
}

std::optional<std::string> TlsChannel::takeRecordLayer(bool sending) {
  // Without read-ahead OpenSSL reads the handshake record by record, so
  // what followed it is still in the pair (or the socket); anything it did
  // take stays its.
  if (SSL_has_pending(ssl_)) return "OpenSSL had already read application data";
  if (clientSecret_.empty() || serverSecret_.empty()) {
    return "OpenSSL's key log gave no application traffic secrets";
  }
  const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl_);
  if (cipher == nullptr) return "no negotiated cipher suite";
  auto suite = recordCipherOf(static_cast<uint16_t>(SSL_CIPHER_get_protocol_id(cipher)));
  if (!suite) return suite.error().message();
  const bool client = context_->role() == TlsContext::Role::kClient;
  std::optional<RecordProtection> sealing;
  if (sending) {
    auto made =
        RecordProtection::create(*suite, client ? clientSecret_ : serverSecret_,
                                 RecordProtection::Direction::kSeal, context_->cipherEngine());
    if (!made) return made.error().message();
    sealing.emplace(std::move(*made));
  }
  auto opening =
      RecordProtection::create(*suite, client ? serverSecret_ : clientSecret_,
                               RecordProtection::Direction::kOpen, context_->cipherEngine());
  if (!opening) return opening.error().message();
  BIO* received = SSL_get_rbio(ssl_);
  const size_t pending = BIO_ctrl_pending(received);
  if (pending > kReceiveBuffer) return "more ciphertext pending than the receive buffer holds";
  // Where the kernel seals, only received ciphertext needs a buffer.
  auto pool = BufferPool::create(sending ? 2 : 1, std::max(kSealedBatch, kReceiveBuffer), 0);
  if (!pool) return pool.error().message();
  buffers_ = std::move(*pool);
  uint8_t* rx = receiveBuffer();
  while (rxEnd_ < pending) {
    int n = BIO_read(received, rx + rxEnd_, static_cast<int>(pending - rxEnd_));
    if (n <= 0) return "cannot take the ciphertext pending after the handshake";
    rxEnd_ += static_cast<size_t>(n);
  }
  spill_.resize(kMaxRecordCiphertext);
  opening_.emplace(std::move(*opening));
  // Sending stays OpenSSL's (through the kernel): it keeps its socket BIO.
  if (!sealing) return std::nullopt;
  sealing_.emplace(std::move(*sealing));
  // OpenSSL reads and writes no more records: its pair's buffers (a batch
  // and more each way) go now rather than with the session. The SSL keeps
  // an empty memory BIO so that nothing it might still touch dangles.
  BIO* idle = BIO_new(BIO_s_mem());
  if (idle != nullptr) {
    SSL_set_bio(ssl_, idle, idle);  // frees the SSL's end of the pair
    BIO_free(network_);
    network_ = nullptr;
  }
  return std::nullopt;
}

Result<void> TlsChannel::updateSendingKey(bool askPeerToo) {
  if (sealing_) {
    keyUpdateDue_ = askPeerToo ? kKeyUpdateAskingPeer : kKeyUpdate;
    return ok();
  }
  // Linux takes a socket's TLS sending key once. OpenSSL 3.0 would announce
  // the update and go on sealing under the old key, which the peer then
  // refuses as altered records: refuse here instead, before anything is
  // sent under a key the peer no longer expects.
  if (kernelSend_) {
    return Error::invalid("tls key update", peer(), "",
                          "this end's records are sealed by kernel TLS, which takes no new "
                          "sending key once set: the session cannot continue");
  }
  ERR_clear_error();
  if (SSL_key_update(ssl_, askPeerToo ? SSL_KEY_UPDATE_REQUESTED : SSL_KEY_UPDATE_NOT_REQUESTED) !=
      1) {
    return tlsError("tls key update", 0);
  }
  return ok();
}

Result<void> TlsChannel::sendRecords(const uint8_t* data, size_t length) {
  uint8_t* out = buffers_.data(0);
  size_t done = 0;
  while (done < length) {
    const size_t batchEnd = done + std::min(length - done, kRecordBatch);
    size_t used = 0;
    // A KeyUpdate that is due goes out first, under the old key.
    int update = keyUpdateDue_.exchange(kKeyUpdateNone);
    while (done < batchEnd) {
      // The last record under a key is the KeyUpdate that retires it.
      if (sealing_->sequence() + 1 >= kRecordsPerKey && update == kKeyUpdateNone) {
        update = kKeyUpdate;
      }
      if (update != kKeyUpdateNone) {
        const auto message = keyUpdateMessage(update == kKeyUpdateAskingPeer);
        auto sealed = sealing_->seal(ContentType::kHandshake, message, out + used);
        if (!sealed) return sealed.error();
        used += *sealed;
        if (auto u = sealing_->update(); !u) return u;
        update = kKeyUpdateNone;
      }
      const size_t piece = std::min(batchEnd - done, kMaxRecordPlaintext);
      auto sealed = sealing_->seal(ContentType::kApplicationData, {data + done, piece}, out + used);
      if (!sealed) return sealed.error();
      used += *sealed;
      done += piece;
    }
    if (auto sent = socket_->sendAll(out, used); !sent) return sent;
  }
  return ok();
}

Result<size_t> TlsChannel::nextRecord(size_t needed) {
  uint8_t* rx = receiveBuffer();
  for (;;) {
    const size_t have = rxEnd_ - rxStart_;
    // Bytes certain to come: the rest of the record begun (or of its
    // header), and, since every record is longer than its plaintext, as
    // many ciphertext bytes as the caller still waits for. Waiting for all
    // of them at once (MSG_WAITALL) takes a block in one completion instead
    // of one per arrival.
    size_t sure = kRecordHeaderSize - std::min(have, kRecordHeaderSize);
    if (have >= kRecordHeaderSize) {
      auto size = recordLength({rx + rxStart_, kRecordHeaderSize}, peer());
      if (!size) return size.error();
      if (have >= *size) return *size;
      sure = *size - have;
    }
    if (needed > have) sure = std::max(sure, needed - have);
    // Keep room for a whole record after its start: move a partial one to
    // the front (at most one record's bytes) when the end is near.
    if (have == 0) {
      rxStart_ = rxEnd_ = 0;
    } else if (kReceiveBuffer - rxStart_ < kRecordHeaderSize + kMaxRecordCiphertext) {
      std::memmove(rx, rx + rxStart_, have);
      rxStart_ = 0;
      rxEnd_ = have;
    }
    sure = std::min(sure, kReceiveBuffer - rxEnd_);
    if (auto r = socket_->recvExact(rx + rxEnd_, sure); !r) return r.error();
    rxEnd_ += sure;
  }
}

Result<void> TlsChannel::receiveRecords(uint8_t* out, size_t length) {
  size_t done = std::min(spillEnd_ - spillStart_, length);
  std::memcpy(out, spill_.data() + spillStart_, done);
  spillStart_ += done;
  uint8_t* rx = receiveBuffer();
  while (done < length) {
    auto size = nextRecord(length - done);
    if (!size) return size.error();
    const std::span<const uint8_t> record(rx + rxStart_, *size);
    const size_t inner = *size - kRecordHeaderSize - kRecordTagSize;
    const size_t room = length - done;
    // A record whose plaintext fits is opened straight into the caller's
    // buffer; only one that straddles the end of the request is spilled.
    const bool direct = inner <= room;
    uint8_t* target = direct ? out + done : spill_.data();
    auto opened = opening_->open(record, target);
    rxStart_ += *size;
    if (!opened) {
      Error e = opened.error();
      e.path = peer();
      return e;
    }
    if (opened->type != ContentType::kApplicationData) {
      if (auto r = onControlRecord(opened->type, {target, opened->length}); !r) return r;
      continue;
    }
    if (direct) {
      done += opened->length;
      continue;
    }
    const size_t take = std::min(opened->length, room);
    std::memcpy(out + done, spill_.data(), take);
    done += take;
    spillStart_ = take;
    spillEnd_ = opened->length;
  }
  return ok();
}

Result<void> TlsChannel::onControlRecord(ContentType type, std::span<const uint8_t> content) {
  if (type == ContentType::kAlert) {
    if (content.size() == 2 && content[1] == 0) {
      return Error::invalid("tls read", peer(), "", "the peer closed the TLS session");
    }
    return Error::invalid("tls read", peer(),
                          content.size() == 2 ? std::to_string(content[1]) : std::string(),
                          "the peer sent a TLS alert (RFC 8446 6, by number)");
  }
  if (type != ContentType::kHandshake) {
    return Error::invalid("tls read", peer(), std::to_string(static_cast<int>(type)),
                          "unexpected content type in a protected record");
  }
  // Post-handshake messages, each whole within its record here: KeyUpdate
  // moves the receiving key on; a NewSessionTicket is not used (sessions are
  // not resumed). Anything else has no place after the handshake.
  while (!content.empty()) {
    if (content.size() < 4) {
      return Error::invalid("tls read", peer(), std::to_string(content.size()),
                            "handshake message header cut short");
    }
    const uint8_t messageType = content[0];
    const size_t messageLength =
        (size_t(content[1]) << 16) | (size_t(content[2]) << 8) | content[3];
    if (content.size() < 4 + messageLength) {
      return Error::invalid("tls read", peer(), std::to_string(messageLength),
                            "handshake message longer than its record");
    }
    if (messageType == 24) {
      if (messageLength != 1 || content[4] > 1) {
        return Error::invalid("tls read", peer(), std::to_string(messageLength),
                              "malformed KeyUpdate");
      }
      if (auto u = opening_->update(); !u) return u;
      // The peer asked for ours: it goes out before our next data (from
      // OpenSSL where it sends).
      if (content[4] == 1) {
        int none = kKeyUpdateNone;
        if (sealing_) {
          keyUpdateDue_.compare_exchange_strong(none, kKeyUpdate);
        } else if (auto u = updateSendingKey(false); !u) {
          return u;
        }
      }
    } else if (messageType != 4) {
      return Error::invalid("tls read", peer(), std::to_string(messageType),
                            "unexpected handshake message after the handshake");
    }
    content = content.subspan(4 + messageLength);
  }
  return ok();
}

}  // namespace Atoll::transfer
