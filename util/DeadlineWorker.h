#pragma once
// One thread for calls whose caller may stop waiting for them. Some client
// libraries block with no deadline of their own (libvirt's: its keepalive
// needs an event loop, and even then a call waits out interval x count), so
// a manager that hangs holds whoever called it for as long as it hangs. A
// caller hands the call to this thread and waits only up to its own
// deadline. A call past that deadline goes on here, and the thread takes no
// other until it returns: later callers learn at once which call holds it
// and for how long, instead of queueing behind it.
//
// The thread blocks SIGPIPE (blockSigpipeInThisThread): such clients write
// to sockets whose far end may go away.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <variant>

namespace Atoll {

class DeadlineWorker {
 public:
  using Clock = std::chrono::steady_clock;

  // The call that holds the thread.
  struct Busy {
    std::string what;
    Clock::duration waited{};  // since it was handed over
  };

  DeadlineWorker();
  // Joins the thread when no call is in progress. One still in a call is
  // left to finish it on its own: it holds what it needs, and a call's own
  // captures must keep alive whatever it writes its answer to.
  ~DeadlineWorker();
  DeadlineWorker(const DeadlineWorker&) = delete;
  DeadlineWorker& operator=(const DeadlineWorker&) = delete;

  // Hands `call` (named `what` for Busy) to the thread and returns its
  // number, unless an earlier call is still in progress: then hands nothing
  // and says which call that is. `call` must not throw.
  std::variant<uint64_t, Busy> start(std::string what, std::function<void()> call);

  // Waits up to `deadline` for call number `call` to return; true once it
  // has. What the call wrote before returning is visible to the caller then.
  bool waitFor(uint64_t call, std::chrono::milliseconds deadline);

 private:
  struct State;
  std::shared_ptr<State> state_;
  std::thread thread_;
};

}  // namespace Atoll
