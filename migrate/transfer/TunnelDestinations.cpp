#include "migrate/transfer/TunnelDestinations.h"

#include <sys/random.h>
#include <sys/un.h>

#include <cerrno>
#include <cstdio>

namespace Atoll::transfer {

namespace {

// 16 hexadecimal digits hold 64 bits.
constexpr size_t kTunnelIdDigits = 16;

Result<uint64_t> randomId() {
  uint64_t id = 0;
  for (;;) {
    ssize_t n = ::getrandom(&id, sizeof id, 0);
    if (n == static_cast<ssize_t>(sizeof id)) return id;
    if (n < 0 && errno == EINTR) continue;
    return Error::fromErrno("getrandom", "tunnel id", n < 0 ? errno : EIO);
  }
}

// A socket a destination names: absolute (the server's working directory is
// no business of whoever registered it) and short enough for sockaddr_un.
Result<void> checkSocketPath(const std::string& path, const std::string& what) {
  if (path.empty() || path.front() != '/') {
    return Error::invalid("register tunnel destination", what, path,
                          "the socket path must be absolute");
  }
  if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return Error::invalid("register tunnel destination", what, path,
                          "the socket path is longer than a unix socket address holds (" +
                              std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) + " bytes)");
  }
  return ok();
}

}  // namespace

Result<uint64_t> TunnelDestinations::add(const TunnelDestination& destination,
                                         std::chrono::seconds lifetime, Clock::time_point now) {
  bool relay = !destination.unixSocket.empty();
  bool handOff = !destination.qmpSocket.empty();
  if (relay == handOff) {
    return Error::invalid(
        "register tunnel destination",
        relay ? destination.unixSocket + " and " + destination.qmpSocket : std::string(), "",
        relay ? "name either the destination QEMU's incoming unix socket (relay) or its QMP "
                "socket (hand-off), not both"
              : "neither the destination QEMU's incoming unix socket (relay) nor its QMP socket "
                "(hand-off) is named");
  }
  auto checked = relay ? checkSocketPath(destination.unixSocket, "unix socket")
                       : checkSocketPath(destination.qmpSocket, "QMP socket");
  if (!checked) return checked.error();
  if (lifetime.count() <= 0) {
    return Error::invalid("register tunnel destination", "lifetime",
                          std::to_string(lifetime.count()) + " s", "must be more than 0 seconds");
  }
  std::lock_guard lock(mutex_);
  dropExpired(now);
  // Ids in use are never handed out again; 0 means "none" on the wire.
  for (;;) {
    auto id = randomId();
    if (!id) return id.error();
    if (*id == 0 || entries_.count(*id) != 0) continue;
    entries_[*id] = RegisteredDestination{*id, destination, now + lifetime};
    return *id;
  }
}

bool TunnelDestinations::remove(uint64_t tunnelId) {
  std::lock_guard lock(mutex_);
  dropExpired(Clock::now());
  return entries_.erase(tunnelId) != 0;
}

std::optional<TunnelDestination> TunnelDestinations::find(uint64_t tunnelId,
                                                          Clock::time_point now) const {
  std::lock_guard lock(mutex_);
  dropExpired(now);
  auto entry = entries_.find(tunnelId);
  if (entry == entries_.end()) return std::nullopt;
  return entry->second.destination;
}

std::vector<RegisteredDestination> TunnelDestinations::list(Clock::time_point now) const {
  std::lock_guard lock(mutex_);
  dropExpired(now);
  std::vector<RegisteredDestination> alive;
  alive.reserve(entries_.size());
  for (const auto& [id, entry] : entries_) alive.push_back(entry);
  return alive;
}

void TunnelDestinations::dropExpired(Clock::time_point now) const {
  for (auto entry = entries_.begin(); entry != entries_.end();) {
    if (entry->second.expiresAt <= now) {
      entry = entries_.erase(entry);
    } else {
      ++entry;
    }
  }
}

std::string tunnelIdText(uint64_t tunnelId) {
  char text[kTunnelIdDigits + 1];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(tunnelId));
  return text;
}

Result<uint64_t> parseTunnelId(const std::string& text) {
  std::string digits = text;
  if (digits.size() >= 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) {
    digits.erase(0, 2);
  }
  if (digits.empty()) {
    // An empty value would vanish from the message; it is named as ''.
    return Error::invalid("parse tunnel id", "", text,
                          (text.empty() ? std::string("'' is empty: ") : std::string()) +
                              "expected 1 to 16 hexadecimal digits");
  }
  if (digits.size() > kTunnelIdDigits) {
    return Error::invalid("parse tunnel id", "", text,
                          "more than 16 hexadecimal digits: a tunnel id has 64 bits");
  }
  uint64_t id = 0;
  for (char c : digits) {
    uint64_t digit;
    if (c >= '0' && c <= '9') {
      digit = static_cast<uint64_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      digit = static_cast<uint64_t>(c - 'a' + 10);
    } else if (c >= 'A' && c <= 'F') {
      digit = static_cast<uint64_t>(c - 'A' + 10);
    } else {
      return Error::invalid("parse tunnel id", "", text,
                            std::string("'") + c + "' is not a hexadecimal digit");
    }
    id = (id << 4) | digit;
  }
  if (id == 0) {
    return Error::invalid("parse tunnel id", "", text,
                          "0 is no tunnel id (it stands for \"choose one\")");
  }
  return id;
}

}  // namespace Atoll::transfer
