#include "migrate/transfer/Net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace Atoll::transfer {

std::string Endpoint::text() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

Result<Endpoint> parseEndpoint(const std::string& text) {
  Endpoint endpoint;
  std::string portText;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return Error::invalid("parse", "endpoint", text, "expected [IPV6]:PORT");
    }
    endpoint.host = text.substr(1, close - 1);
    portText = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0) {
      return Error::invalid("parse", "endpoint", text, "expected HOST:PORT");
    }
    endpoint.host = text.substr(0, colon);
    portText = text.substr(colon + 1);
  }
  unsigned port = 0;
  auto [end, ec] = std::from_chars(portText.data(), portText.data() + portText.size(), port);
  if (ec != std::errc() || end != portText.data() + portText.size() || port > 65535 ||
      portText.empty()) {
    return Error::invalid("parse", "endpoint", text, "port must be a number from 0 to 65535");
  }
  endpoint.port = static_cast<uint16_t>(port);
  return endpoint;
}

namespace {

Result<addrinfo*> resolve(const Endpoint& endpoint, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  addrinfo* result = nullptr;
  std::string port = std::to_string(endpoint.port);
  int rc = ::getaddrinfo(endpoint.host.empty() ? nullptr : endpoint.host.c_str(), port.c_str(),
                         &hints, &result);
  if (rc != 0) {
    return Error::invalid("resolve", endpoint.text(), endpoint.host, ::gai_strerror(rc));
  }
  return result;
}

// Waits until a non-blocking connect on `fd` finished (either way: SO_ERROR
// tells which) or `timeout` passed. A signal cuts poll short while the
// connect is still in progress, so the wait goes on to the same deadline.
Result<void> waitForConnect(int fd, std::chrono::milliseconds timeout, const std::string& peer) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return Error::fromErrno("connect", peer, ETIMEDOUT);
    pollfd p{fd, POLLOUT, 0};
    int rc = ::poll(&p, 1, static_cast<int>(left.count()));
    if (rc > 0) return ok();
    if (rc < 0 && errno != EINTR) return Error::fromErrno("poll", peer, errno);
  }
}

}  // namespace

void tuneBulkSocket(int fd, std::chrono::milliseconds idleTimeout) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  unsigned timeoutMs = static_cast<unsigned>(idleTimeout.count());
  ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &timeoutMs, sizeof timeoutMs);
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
}

Result<UniqueFd> listenTcp(const Endpoint& endpoint, int backlog) {
  auto resolved = resolve(endpoint, true);
  if (!resolved) return resolved.error();
  addrinfo* list = *resolved;
  Error last = Error::invalid("listen", endpoint.text(), "", "no usable address");
  for (addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd.valid()) {
      last = Error::fromErrno("socket", endpoint.text(), errno);
      continue;
    }
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
      last = Error::fromErrno("bind", endpoint.text(), errno);
      continue;
    }
    if (::listen(fd.get(), backlog) != 0) {
      last = Error::fromErrno("listen", endpoint.text(), errno);
      continue;
    }
    ::freeaddrinfo(list);
    return fd;
  }
  ::freeaddrinfo(list);
  return last;
}

Result<uint16_t> boundPort(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    return Error::fromErrno("getsockname", "listener", errno);
  }
  if (address.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<sockaddr_in6*>(&address)->sin6_port);
  }
  return ntohs(reinterpret_cast<sockaddr_in*>(&address)->sin_port);
}

Result<UniqueFd> connectTcp(const Endpoint& endpoint, std::chrono::milliseconds idleTimeout) {
  auto resolved = resolve(endpoint, false);
  if (!resolved) return resolved.error();
  addrinfo* list = *resolved;
  Error last = Error::invalid("connect", endpoint.text(), "", "no usable address");
  for (addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    UniqueFd fd(
        ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol));
    if (!fd.valid()) {
      last = Error::fromErrno("socket", endpoint.text(), errno);
      continue;
    }
    tuneBulkSocket(fd.get(), idleTimeout);
    int rc = ::connect(fd.get(), ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      if (auto waited = waitForConnect(fd.get(), idleTimeout, endpoint.text()); !waited) {
        last = waited.error();
        continue;
      }
      int soError = 0;
      socklen_t length = sizeof soError;
      ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &soError, &length);
      if (soError != 0) {
        last = Error::fromErrno("connect", endpoint.text(), soError);
        continue;
      }
      rc = 0;
    }
    if (rc != 0) {
      last = Error::fromErrno("connect", endpoint.text(), errno);
      continue;
    }
    // Back to blocking: io_uring and the TLS handshake expect it.
    int flags = ::fcntl(fd.get(), F_GETFL);
    ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
    ::freeaddrinfo(list);
    return fd;
  }
  ::freeaddrinfo(list);
  return last;
}

Result<UniqueFd> acceptConnection(int listenFd, std::string* peerText,
                                  std::chrono::milliseconds idleTimeout) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  int fd;
  do {
    fd = ::accept4(listenFd, reinterpret_cast<sockaddr*>(&address), &length, SOCK_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return Error::fromErrno("accept", "listener", errno);
  if (peerText != nullptr) {
    char host[INET6_ADDRSTRLEN] = "unix";
    uint16_t port = 0;
    if (address.ss_family == AF_INET) {
      auto* in = reinterpret_cast<sockaddr_in*>(&address);
      ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
      port = ntohs(in->sin_port);
    } else if (address.ss_family == AF_INET6) {
      auto* in = reinterpret_cast<sockaddr_in6*>(&address);
      ::inet_ntop(AF_INET6, &in->sin6_addr, host, sizeof host);
      port = ntohs(in->sin6_port);
    }
    *peerText = Endpoint{host, port}.text();
  }
  if (address.ss_family == AF_INET || address.ss_family == AF_INET6) {
    tuneBulkSocket(fd, idleTimeout);
  }
  return UniqueFd(fd);
}

namespace {
Result<sockaddr_un> unixAddress(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof address.sun_path) {
    return Error::invalid("unix socket", path, std::to_string(path.size()),
                          "path must be 1 to 107 bytes");
  }
  std::memcpy(address.sun_path, path.data(), path.size());
  return address;
}
}  // namespace

Result<UniqueFd> listenUnix(const std::string& path) {
  auto address = unixAddress(path);
  if (!address) return address.error();
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Error::fromErrno("socket", path, errno);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&*address), sizeof *address) != 0) {
    return Error::fromErrno("bind", path, errno);
  }
  if (::listen(fd.get(), 16) != 0) return Error::fromErrno("listen", path, errno);
  return fd;
}

Result<UniqueFd> connectUnix(const std::string& path) {
  auto address = unixAddress(path);
  if (!address) return address.error();
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Error::fromErrno("socket", path, errno);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&*address), sizeof *address) != 0) {
    return Error::fromErrno("connect", path, errno);
  }
  return fd;
}

}  // namespace Atoll::transfer
