#include "kernel-configs/KernelTlsProbe.h"

#include <arpa/inet.h>
#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "util/Result.h"
#include "util/UniqueFd.h"

namespace Atoll::capability {

namespace {

constexpr const char* kFeature = "kernel_tls";
constexpr const char* kFix = "CONFIG_TLS=m or =y (module tls)";
constexpr const char* kUlpName = "tls";
constexpr const char* kLoopback = "127.0.0.1";

struct ConnectedPair {
  UniqueFd client;
  UniqueFd server;
};

// A TCP connection over loopback; the listener is closed once accepted.
Result<ConnectedPair> connectLoopback() {
  UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!listener.valid()) return Error::fromErrno("socket", "AF_INET SOCK_STREAM", errno);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = 0;
  ::inet_pton(AF_INET, kLoopback, &address.sin_addr);
  if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
    return Error::fromErrno("bind", kLoopback, errno);
  if (::listen(listener.get(), 1) != 0) return Error::fromErrno("listen", kLoopback, errno);
  socklen_t length = sizeof address;
  if (::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0)
    return Error::fromErrno("getsockname", kLoopback, errno);
  UniqueFd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!client.valid()) return Error::fromErrno("socket", "AF_INET SOCK_STREAM", errno);
  // Loopback connects complete from the listen backlog without the
  // listener accepting first, so neither call can block.
  if (::connect(client.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
    return Error::fromErrno("connect", kLoopback + (":" + std::to_string(ntohs(address.sin_port))),
                            errno);
  UniqueFd server(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!server.valid()) return Error::fromErrno("accept", kLoopback, errno);
  return ConnectedPair{std::move(client), std::move(server)};
}

}  // namespace

Feature probeKernelTls() {
  auto pair = connectLoopback();
  if (!pair) return Feature::absent(kFeature, false, pair.error().message(), kFix);
  if (::setsockopt(pair->client.get(), SOL_TCP, TCP_ULP, kUlpName, std::strlen(kUlpName)) != 0)
    return Feature::absent(
        kFeature, false,
        Error::fromErrno("setsockopt TCP_ULP", "loopback TCP socket", errno, kUlpName).message(),
        kFix);
  // A zero key is fine: nothing is sent, the kernel only sets the cipher up.
  tls12_crypto_info_aes_gcm_128 crypto{};
  crypto.info.version = TLS_1_2_VERSION;
  crypto.info.cipher_type = TLS_CIPHER_AES_GCM_128;
  if (::setsockopt(pair->client.get(), SOL_TLS, TLS_TX, &crypto, sizeof crypto) != 0)
    return Feature::degraded(
        kFeature, false,
        "TCP_ULP tls attached, but " +
            Error::fromErrno("setsockopt TLS_TX", "loopback TCP socket", errno, "AES-GCM-128")
                .message(),
        "CONFIG_CRYPTO_GCM and CONFIG_CRYPTO_AES in the kernel");
  return Feature::ok(kFeature, false,
                     "TCP_ULP tls attached to a loopback TCP socket and AES-GCM-128 transmit key "
                     "accepted");
}

}  // namespace Atoll::capability
