#pragma once
// Destination QEMUs waiting for an incoming migration, by tunnel id. A
// TransferServer with a fixed destination serves one QEMU; a daemon serves a
// migration to any VM: the destination QEMU is registered first (POST
// /v1/migrations/incoming), the source names the id it got in its
// TunnelOpen / TunnelHandOff, and the server looks the destination up here.
// Entries expire, so a migration that never came leaves nothing behind. A
// hand-off entry is also removed once its QEMU took a connection (QEMU takes
// one incoming migration); a relay entry stays until it expires, since a
// multifd migration opens one tunnel per channel to the same socket.
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "util/Result.h"

namespace Atoll::transfer {

struct TunnelDestination {
  // Relay: the destination QEMU's `-incoming unix:PATH` socket.
  std::string unixSocket;
  // Hand-off: the destination QEMU's QMP socket (QEMU started with
  // `-incoming defer`). Exactly one of the two is set.
  std::string qmpSocket;
};

struct RegisteredDestination {
  uint64_t tunnelId = 0;
  TunnelDestination destination;
  std::chrono::steady_clock::time_point expiresAt;
};

class TunnelDestinations {
 public:
  using Clock = std::chrono::steady_clock;
  // Registers `destination` under a new random id (never 0, never one in
  // use) until `lifetime` has passed. A destination with both or neither
  // socket set, or a path that is not absolute, is an error naming it.
  Result<uint64_t> add(const TunnelDestination& destination, std::chrono::seconds lifetime,
                       Clock::time_point now = Clock::now());
  // False when no such id was registered (or it expired).
  bool remove(uint64_t tunnelId);
  // The destination registered under `tunnelId`, unless it expired.
  std::optional<TunnelDestination> find(uint64_t tunnelId,
                                        Clock::time_point now = Clock::now()) const;
  // Those not expired, by id.
  std::vector<RegisteredDestination> list(Clock::time_point now = Clock::now()) const;

 private:
  void dropExpired(Clock::time_point now) const;
  mutable std::mutex mutex_;
  mutable std::map<uint64_t, RegisteredDestination> entries_;
};

// A tunnel id as operators and the API write it: 16 hexadecimal digits.
std::string tunnelIdText(uint64_t tunnelId);
// Parses 1-16 hexadecimal digits (an optional 0x); 0 and anything else is an
// error naming the text.
Result<uint64_t> parseTunnelId(const std::string& text);

}  // namespace Atoll::transfer
