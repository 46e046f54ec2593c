#include "migrate/transfer/TransferCpus.h"

#include <algorithm>
#include <cerrno>
#include <utility>

namespace Atoll::transfer {

Result<numa::CpuList> threadCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) != 0) {
    return Error::fromErrno("sched_getaffinity", "calling thread", errno);
  }
  numa::CpuList cpus;
  for (unsigned cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  }
  return cpus;
}

Result<TransferCpus> TransferCpus::create(numa::CpuList cpus, const std::string& what) {
  if (cpus.empty()) return TransferCpus(std::move(cpus));
  auto allowed = threadCpus();
  if (!allowed) return allowed.error();
  for (unsigned cpu : cpus) {
    if (std::find(allowed->begin(), allowed->end(), cpu) == allowed->end()) {
      return Error::invalid("place transfers", what, std::to_string(cpu),
                            "this process may not run on that CPU (offline, beyond the host's "
                            "CPUs, or outside its cpuset)");
    }
  }
  return TransferCpus(std::move(cpus));
}

TransferCpus::TransferCpus(TransferCpus&& other) noexcept {
  std::lock_guard lock(other.mutex_);
  cpus_ = std::move(other.cpus_);
  running_ = std::move(other.running_);
}

Result<TransferCpus::Lease> TransferCpus::place() {
  Lease lease;
  if (cpus_.empty()) return lease;
  if (::sched_getaffinity(0, sizeof lease.previous_, &lease.previous_) != 0) {
    return Error::fromErrno("sched_getaffinity", "transfer thread", errno);
  }
  std::lock_guard lock(mutex_);
  size_t slot = 0;
  for (size_t i = 1; i < cpus_.size(); ++i) {
    if (running_[i] < running_[slot]) slot = i;
  }
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpus_[slot], &one);
  if (::sched_setaffinity(0, sizeof one, &one) != 0) {
    return Error::fromErrno("sched_setaffinity", "transfer thread", errno,
                            std::to_string(cpus_[slot]));
  }
  ++running_[slot];
  lease.owner_ = this;
  lease.slot_ = slot;
  lease.cpu_ = static_cast<int>(cpus_[slot]);
  return lease;
}

std::vector<size_t> TransferCpus::running() const {
  std::lock_guard lock(mutex_);
  return running_;
}

void TransferCpus::release(size_t slot) {
  std::lock_guard lock(mutex_);
  if (running_[slot] > 0) --running_[slot];
}

TransferCpus::Lease::Lease(Lease&& other) noexcept
    : owner_(std::exchange(other.owner_, nullptr)),
      slot_(other.slot_),
      cpu_(std::exchange(other.cpu_, -1)),
      previous_(other.previous_) {}

TransferCpus::Lease& TransferCpus::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    end();
    owner_ = std::exchange(other.owner_, nullptr);
    slot_ = other.slot_;
    cpu_ = std::exchange(other.cpu_, -1);
    previous_ = other.previous_;
  }
  return *this;
}

TransferCpus::Lease::~Lease() {
  end();
}

void TransferCpus::Lease::end() {
  if (owner_ == nullptr) return;
  // Best effort: a CPU of the old set may have gone offline meanwhile, and
  // the thread then keeps running where it is.
  (void)::sched_setaffinity(0, sizeof previous_, &previous_);
  owner_->release(slot_);
  owner_ = nullptr;
  cpu_ = -1;
}

}  // namespace Atoll::transfer
