#pragma once
// Socket setup for the transfer engine: endpoints parsed from operator input,
// TCP listen/connect with the options bulk transfers need, unix sockets for
// the QEMU side of the tunnel.
#include <chrono>
#include <cstdint>
#include <string>

#include "util/Result.h"
#include "util/UniqueFd.h"

namespace Atoll::transfer {

struct Endpoint {
  std::string host;  // numeric IPv4/IPv6 or a resolvable name
  uint16_t port = 0;
  std::string text() const;
};

// "HOST:PORT" or "[V6]:PORT"; a bad value gets a message naming it.
Result<Endpoint> parseEndpoint(const std::string& text);

Result<UniqueFd> listenTcp(const Endpoint& endpoint, int backlog = 16);
// The port a listening socket was bound to (for port 0).
Result<uint16_t> boundPort(int fd);
// Connects with a deadline; sets TCP_NODELAY and TCP_USER_TIMEOUT so that a
// dead peer surfaces as an error within `idleTimeout`.
Result<UniqueFd> connectTcp(const Endpoint& endpoint, std::chrono::milliseconds idleTimeout);
Result<UniqueFd> acceptConnection(int listenFd, std::string* peerText,
                                  std::chrono::milliseconds idleTimeout);
// The same options for accepted sockets.
void tuneBulkSocket(int fd, std::chrono::milliseconds idleTimeout);

Result<UniqueFd> listenUnix(const std::string& path);
Result<UniqueFd> connectUnix(const std::string& path);

}  // namespace Atoll::transfer
