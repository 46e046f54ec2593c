#pragma once
// The signals atolld handles (SIGHUP reload; SIGTERM and SIGINT drain), read
// from a signalfd in the main loop instead of async handlers. block() must run
// before any thread starts so that every thread inherits the blocked mask and
// the signals queue for the signalfd.
#include <signal.h>
#include <optional>

#include "util/Result.h"
#include "util/UniqueFd.h"

namespace Atoll {

class SignalSet {
 public:
  // Blocks SIGHUP, SIGTERM and SIGINT in the calling thread and ignores
  // SIGPIPE (a client that hangs up must not kill the daemon).
  static void block();
  static Result<SignalSet> open();

  int fd() const { return fd_.get(); }
  // The next pending signal, or nullopt when none is queued.
  std::optional<int> next();

 private:
  explicit SignalSet(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace Atoll
