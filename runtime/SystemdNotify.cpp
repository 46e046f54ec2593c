#include "runtime/SystemdNotify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>

namespace Atoll {

SystemdNotifier SystemdNotifier::fromEnvironment() {
  const char* address = std::getenv("NOTIFY_SOCKET");
  std::optional<std::chrono::microseconds> watchdog;
  const char* usec = std::getenv("WATCHDOG_USEC");
  const char* pid = std::getenv("WATCHDOG_PID");
  if (usec != nullptr) {
    bool forUs = true;
    if (pid != nullptr) {
      long value = 0;
      auto [end, ec] = std::from_chars(pid, pid + std::strlen(pid), value);
      forUs = ec == std::errc() && value == static_cast<long>(::getpid());
    }
    unsigned long long micros = 0;
    auto [end, ec] = std::from_chars(usec, usec + std::strlen(usec), micros);
    if (forUs && ec == std::errc() && micros > 0) watchdog = std::chrono::microseconds(micros);
  }
  return SystemdNotifier(address == nullptr ? std::string() : std::string(address), watchdog);
}

SystemdNotifier::SystemdNotifier(std::string address,
                                 std::optional<std::chrono::microseconds> watchdog)
    : address_(std::move(address)), watchdog_(watchdog) {}

std::optional<std::chrono::microseconds> SystemdNotifier::watchdogInterval() const {
  if (!enabled() || !watchdog_) return std::nullopt;
  return *watchdog_ / 2;
}

Result<void> SystemdNotifier::notify(std::string_view state) {
  if (!enabled()) return ok();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (address_.size() >= sizeof(addr.sun_path) || (address_[0] != '/' && address_[0] != '@'))
    return Error::invalid("notify", address_, "", "NOTIFY_SOCKET is not a unix socket address");
  std::memcpy(addr.sun_path, address_.data(), address_.size());
  if (address_[0] == '@') addr.sun_path[0] = '\0';  // abstract namespace
  socklen_t length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + address_.size());
  if (!socket_.valid()) {
    int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return Error::fromErrno("socket", address_, errno);
    socket_.reset(fd);
  }
  ssize_t sent = ::sendto(socket_.get(), state.data(), state.size(), MSG_NOSIGNAL,
                          reinterpret_cast<const sockaddr*>(&addr), length);
  if (sent < 0) return Error::fromErrno("sendto", address_, errno, std::string(state));
  return ok();
}

}  // namespace Atoll
