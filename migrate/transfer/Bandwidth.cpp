#include "migrate/transfer/Bandwidth.h"

#include <algorithm>
#include <limits>
#include <numeric>
#include <thread>

namespace Atoll::transfer {

namespace {
// Credit a paced sender may bank while idle: enough to absorb scheduling
// jitter, too little to burst far above the cap.
constexpr std::chrono::nanoseconds kMaxBurst = std::chrono::milliseconds(20);
}  // namespace

std::vector<uint64_t> fairShares(uint64_t hostCap, const std::vector<uint64_t>& caps) {
  std::vector<uint64_t> shares(caps.size(), 0);
  if (hostCap == 0) return caps;
  // Water-filling: serve the smallest caps first; each takes the lesser of its
  // cap and an equal split of what is left.
  std::vector<size_t> order(caps.size());
  std::iota(order.begin(), order.end(), 0);
  auto effectiveCap = [&](size_t i) {
    return caps[i] == 0 ? std::numeric_limits<uint64_t>::max() : caps[i];
  };
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return effectiveCap(a) < effectiveCap(b); });
  uint64_t remaining = hostCap;
  size_t left = caps.size();
  for (size_t i : order) {
    uint64_t equal = remaining / left;
    uint64_t share = std::min(effectiveCap(i), equal);
    shares[i] = share;
    remaining -= share;
    --left;
  }
  return shares;
}

PacingClock PacingClock::steady() {
  return {[] { return std::chrono::steady_clock::now().time_since_epoch(); },
          [](std::chrono::nanoseconds d) { std::this_thread::sleep_for(d); }};
}

void HostBandwidth::setLimit(uint64_t bytesPerSecond) {
  hostCap_.store(bytesPerSecond);
}

void HostBandwidth::add(TransferLimiter* limiter) {
  std::lock_guard lock(mutex_);
  transfers_.push_back(limiter);
}

void HostBandwidth::remove(TransferLimiter* limiter) {
  std::lock_guard lock(mutex_);
  transfers_.erase(std::remove(transfers_.begin(), transfers_.end(), limiter), transfers_.end());
}

size_t HostBandwidth::activeTransfers() const {
  std::lock_guard lock(mutex_);
  return transfers_.size();
}

uint64_t HostBandwidth::rateFor(const TransferLimiter* limiter) const {
  std::lock_guard lock(mutex_);
  std::vector<uint64_t> caps;
  size_t self = transfers_.size();
  for (size_t i = 0; i < transfers_.size(); ++i) {
    caps.push_back(transfers_[i]->limit());
    if (transfers_[i] == limiter) self = i;
  }
  if (self == transfers_.size()) return limiter->limit();
  return fairShares(hostCap_.load(), caps)[self];
}

TransferLimiter::TransferLimiter(uint64_t bytesPerSecond, HostBandwidth* host, PacingClock clock)
    : cap_(bytesPerSecond), host_(host), clock_(std::move(clock)) {
  if (host_ != nullptr) host_->add(this);
}

TransferLimiter::~TransferLimiter() {
  if (host_ != nullptr) host_->remove(this);
}

uint64_t TransferLimiter::effectiveRate() const {
  return host_ != nullptr ? host_->rateFor(this) : cap_.load();
}

std::chrono::nanoseconds TransferLimiter::acquire(uint64_t bytes) {
  uint64_t rate = effectiveRate();
  auto now = clock_.now();
  if (rate == 0) {
    nextSend_ = now;
    return std::chrono::nanoseconds(0);
  }
  if (nextSend_ < now - kMaxBurst) nextSend_ = now - kMaxBurst;
  // The bytes may leave at nextSend_; the following ones after their airtime.
  auto start = nextSend_;
  nextSend_ += std::chrono::nanoseconds(static_cast<int64_t>(
      static_cast<long double>(bytes) * 1e9L / static_cast<long double>(rate)));
  if (start <= now) return std::chrono::nanoseconds(0);
  auto wait = start - now;
  clock_.sleepFor(wait);
  return wait;
}

}  // namespace Atoll::transfer
