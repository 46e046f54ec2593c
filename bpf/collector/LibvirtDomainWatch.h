#pragma once
// libvirt's domain list, asked for off the telemetry tick. libvirt's client
// calls have no deadline (its keepalive needs an event loop, and even then a
// call waits out interval x count), so a busy or hung libvirtd held the tick
// that asked, and with it every sample and the daemon's exit. The watch asks
// on a thread of its own (a DeadlineWorker); a tick waits for the answer only
// up to its deadline and otherwise goes on with the last list libvirt gave.
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "bpf/collector/LibvirtDomains.h"
#include "util/DeadlineWorker.h"
#include "util/Result.h"

namespace Atoll::telemetry {

struct LibvirtAnswer {
  enum class Kind {
    kListed,  // libvirt answered with a list within the deadline
    kFailed,  // libvirt answered with an error within the deadline
    kLate,    // no answer within the deadline: `domains` is the last list
  };
  Kind kind = Kind::kLate;
  std::vector<LibvirtDomain> domains;
  std::optional<Error> error;  // kFailed
  // kLate: whether there was an earlier list, and how long ago it came.
  bool hasEarlierList = false;
  std::chrono::steady_clock::duration listAge{};
  // kLate: how long the request libvirt has not answered has been waiting.
  std::chrono::steady_clock::duration waiting{};
};

class LibvirtDomainWatch {
 public:
  using Lister = std::function<Result<std::vector<LibvirtDomain>>()>;

  // Lists the active domains of `uri` (listLibvirtDomains).
  explicit LibvirtDomainWatch(const std::string& uri);
  // Lists with `lister`, which may block for as long as it likes.
  explicit LibvirtDomainWatch(Lister lister);
  // Joins the listing thread when it is idle. Does not wait for a call
  // libvirt has not answered: the thread that made it is left to finish on
  // its own.
  ~LibvirtDomainWatch() = default;
  LibvirtDomainWatch(const LibvirtDomainWatch&) = delete;
  LibvirtDomainWatch& operator=(const LibvirtDomainWatch&) = delete;

  // Asks libvirt for the list and waits up to `deadline` for the answer;
  // while an earlier request is still unanswered, takes its answer if it
  // has come and otherwise returns at once with the last list.
  LibvirtAnswer refresh(std::chrono::milliseconds deadline);

 private:
  struct Answers;
  Lister lister_;
  // Written by the listing thread; its calls hold it too, so a watch
  // destroyed while libvirt has not answered leaves them a valid place for
  // an answer nobody will read.
  std::shared_ptr<Answers> answers_;
  // The number of the last request handed to the worker.
  uint64_t lastRequest_ = 0;
  // Declared last, so destroyed first: an idle thread is joined before the
  // rest goes.
  DeadlineWorker worker_;
};

}  // namespace Atoll::telemetry
