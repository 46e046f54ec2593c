#include "bpf/collector/LibvirtDomainWatch.h"

#include <mutex>

namespace Atoll::telemetry {

struct LibvirtDomainWatch::Answers {
  using Clock = std::chrono::steady_clock;

  std::mutex mutex;
  // The answer to the last request that returned.
  std::optional<Result<std::vector<LibvirtDomain>>> last;
  // The last list libvirt gave, for answers that come late.
  std::optional<std::vector<LibvirtDomain>> lastList;
  Clock::time_point lastListAt{};
};

LibvirtDomainWatch::LibvirtDomainWatch(const std::string& uri)
    : LibvirtDomainWatch(Lister([uri] { return listLibvirtDomains(uri); })) {}

LibvirtDomainWatch::LibvirtDomainWatch(Lister lister)
    : lister_(std::move(lister)), answers_(std::make_shared<Answers>()) {}

LibvirtAnswer LibvirtDomainWatch::refresh(std::chrono::milliseconds deadline) {
  using Clock = Answers::Clock;
  // A request libvirt left unanswered past an earlier deadline is not waited
  // for again: every discovery would lose its whole deadline to a libvirtd
  // that hangs. Its answer is taken if it came meanwhile.
  const auto asked = Clock::now();
  auto started = worker_.start("list domains", [answers = answers_, lister = lister_] {
    Result<std::vector<LibvirtDomain>> result = lister();
    std::lock_guard lock(answers->mutex);
    if (result) {
      answers->lastList = *result;
      answers->lastListAt = Clock::now();
    }
    answers->last.emplace(std::move(result));
  });
  const auto* busy = std::get_if<DeadlineWorker::Busy>(&started);
  if (busy == nullptr) lastRequest_ = std::get<uint64_t>(started);
  const bool answered =
      worker_.waitFor(lastRequest_, busy ? std::chrono::milliseconds(0) : deadline);

  Answers& a = *answers_;
  std::lock_guard lock(a.mutex);
  LibvirtAnswer answer;
  if (answered) {
    const Result<std::vector<LibvirtDomain>>& result = *a.last;
    if (result) {
      answer.kind = LibvirtAnswer::Kind::kListed;
      answer.domains = *result;
    } else {
      answer.kind = LibvirtAnswer::Kind::kFailed;
      answer.error = result.error();
    }
    return answer;
  }
  answer.kind = LibvirtAnswer::Kind::kLate;
  answer.waiting = busy ? busy->waited : Clock::now() - asked;
  if (a.lastList) {
    answer.hasEarlierList = true;
    answer.domains = *a.lastList;
    answer.listAge = Clock::now() - a.lastListAt;
  }
  return answer;
}

}  // namespace Atoll::telemetry
