#pragma once
// Bandwidth caps: one per transfer, plus a host-wide cap shared fairly among
// the transfers running at the same time. Both can change while transfers
// run; the next acquire() uses the new rates.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace Atoll::transfer {

// Max-min fair shares: each transfer gets at most its own cap, and what one
// cannot use is split among the others. caps[i] == 0 means uncapped; a
// hostCap of 0 means no host-wide cap (then each gets its own cap, 0 = none).
std::vector<uint64_t> fairShares(uint64_t hostCap, const std::vector<uint64_t>& caps);

// Time source for the limiters: real by default, stepped by tests.
struct PacingClock {
  std::function<std::chrono::nanoseconds()> now;
  std::function<void(std::chrono::nanoseconds)> sleepFor;
  static PacingClock steady();
};

class TransferLimiter;

class HostBandwidth {
 public:
  explicit HostBandwidth(uint64_t bytesPerSecond = 0) : hostCap_(bytesPerSecond) {}
  void setLimit(uint64_t bytesPerSecond);
  uint64_t limit() const { return hostCap_.load(); }
  // The rate a registered transfer may use now.
  uint64_t rateFor(const TransferLimiter* limiter) const;
  size_t activeTransfers() const;

 private:
  friend class TransferLimiter;
  void add(TransferLimiter* limiter);
  void remove(TransferLimiter* limiter);

  std::atomic<uint64_t> hostCap_;
  mutable std::mutex mutex_;
  std::vector<TransferLimiter*> transfers_;
};

// Token-bucket pacing for one transfer. Registers with the host (if any) for
// its lifetime.
class TransferLimiter {
 public:
  TransferLimiter(uint64_t bytesPerSecond, HostBandwidth* host,
                  PacingClock clock = PacingClock::steady());
  ~TransferLimiter();
  TransferLimiter(const TransferLimiter&) = delete;
  TransferLimiter& operator=(const TransferLimiter&) = delete;

  void setLimit(uint64_t bytesPerSecond) { cap_.store(bytesPerSecond); }
  uint64_t limit() const { return cap_.load(); }
  // The rate in force now: own cap, reduced to the fair host share.
  uint64_t effectiveRate() const;
  // Waits until `bytes` more may go out, or until the clock's sleep is
  // woken early (a cancel); returns how long it waited.
  std::chrono::nanoseconds acquire(uint64_t bytes);

 private:
  std::atomic<uint64_t> cap_;
  HostBandwidth* host_;
  PacingClock clock_;
  std::chrono::nanoseconds nextSend_{0};
  uint64_t pacedAt_ = 0;  // the rate nextSend_ was reckoned at; 0: none
};

}  // namespace Atoll::transfer
