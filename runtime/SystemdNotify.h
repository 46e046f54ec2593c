#pragma once
// The systemd notification protocol (sd_notify(3)) without libsystemd: one
// datagram per state change to the unix socket named by $NOTIFY_SOCKET (a path,
// or '@' for the abstract namespace). With no $NOTIFY_SOCKET (not started by
// systemd) every call is a no-op. Also drives the watchdog when systemd set
// $WATCHDOG_USEC for this process.
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "util/Result.h"
#include "util/UniqueFd.h"

namespace Atoll {

class SystemdNotifier {
 public:
  static SystemdNotifier fromEnvironment();
  // For tests: an explicit socket address in $NOTIFY_SOCKET syntax.
  explicit SystemdNotifier(std::string address,
                           std::optional<std::chrono::microseconds> watchdog = std::nullopt);

  bool enabled() const { return !address_.empty(); }
  // Sends "KEY=VALUE\n..." lines, e.g. "READY=1\nSTATUS=serving".
  Result<void> notify(std::string_view state);
  // The interval at which to send WATCHDOG=1 (half systemd's timeout).
  std::optional<std::chrono::microseconds> watchdogInterval() const;

 private:
  std::string address_;
  std::optional<std::chrono::microseconds> watchdog_;
  UniqueFd socket_;
};

}  // namespace Atoll
