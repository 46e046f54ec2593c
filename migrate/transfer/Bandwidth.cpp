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
// Longest single sleep of a paced sender: a cap changed while it waits (or a
// host share that grew when another transfer ended) applies within this.
constexpr std::chrono::nanoseconds kRecheckInterval = std::chrono::milliseconds(100);

std::chrono::nanoseconds airtime(long double bytes, uint64_t rate) {
  return std::chrono::nanoseconds(
      static_cast<int64_t>(bytes * 1e9L / static_cast<long double>(rate)));
}
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
    // A share of 0 would read as "uncapped": at least 1 byte per second.
    uint64_t share = std::min(effectiveCap(i), std::max<uint64_t>(equal, 1));
    shares[i] = share;
    remaining -= std::min(share, remaining);
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
  std::chrono::nanoseconds waited{0};
  for (;;) {
    uint64_t rate = effectiveRate();
    auto now = clock_.now();
    if (rate == 0) {
      nextSend_ = now;
      pacedAt_ = 0;
      return waited;
    }
    // The airtime still owed was reckoned at the rate then in force; a rate
    // changed since applies to what is left of it, so that a raised cap is
    // not held back by the old one's debt.
    if (pacedAt_ != 0 && pacedAt_ != rate && nextSend_ > now) {
      nextSend_ = now + airtime(static_cast<long double>((nextSend_ - now).count()) * 1e-9L *
                                    static_cast<long double>(pacedAt_),
                                rate);
    }
    pacedAt_ = rate;
    if (nextSend_ < now - kMaxBurst) nextSend_ = now - kMaxBurst;
    // The bytes may leave at nextSend_; the following ones after their airtime.
    if (nextSend_ <= now) {
      nextSend_ += airtime(static_cast<long double>(bytes), rate);
      return waited;
    }
    auto wait = std::min<std::chrono::nanoseconds>(nextSend_ - now, kRecheckInterval);
    clock_.sleepFor(wait);
    const auto slept = clock_.now() - now;
    waited += slept;
    // A sleep that ends early was woken on purpose (the transfer is being
    // cancelled): the caller looks why before anything goes out.
    if (slept < wait) return waited;
  }
}

}  // namespace Atoll::transfer
