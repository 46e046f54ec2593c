#pragma once
// Where a transfer's threads run. Each side of a transfer passes every block
// through one buffer in several steps: the receiver's socket receive copies
// it in, the checksum reads it and the file write copies it out (the sender
// reads, hashes and sends the same way). Those steps can run on several
// threads: io_uring's workers where a file write or read would block, and
// the second thread of a pipelined side (Pipeline.h). Left to the scheduler,
// they often run on different CPUs and each reads the block back from
// memory; kept on one CPU, the block is still in that CPU's caches at every
// step. On a hypervisor host it also keeps bulk transfers off the CPUs that
// islands give to VMs. So a transfer side, when given CPUs, runs all its
// threads (and its io_uring workers) on one of them for as long as it runs:
// the one running fewest of this process's transfers.
#include <sched.h>

#include <cstddef>
#include <mutex>
#include <string>
#include <vector>

#include "numa/Topology.h"
#include "util/Result.h"

namespace Atoll::transfer {

// The CPUs the calling thread may run on now (sched_getaffinity).
Result<numa::CpuList> threadCpus();

class TransferCpus {
 public:
  // Checks that every CPU in `cpus` is one this process may run on; `what`
  // names the setting in errors ("--cpus", "transfer.cpus"). Empty `cpus`:
  // transfers are not placed.
  static Result<TransferCpus> create(numa::CpuList cpus, const std::string& what);
  TransferCpus(TransferCpus&& other) noexcept;
  TransferCpus& operator=(TransferCpus&& other) = delete;

  const numa::CpuList& cpus() const { return cpus_; }

  // Holds one CPU for one transfer side: the calling thread runs on it (and
  // so does every thread it starts while the lease is held) until the lease
  // ends, which gives the thread back its previous CPUs.
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&& other) noexcept;
    ~Lease();
    // The CPU held; -1 when the transfer is not placed.
    int cpu() const { return cpu_; }

   private:
    friend class TransferCpus;
    void end();
    TransferCpus* owner_ = nullptr;
    size_t slot_ = 0;
    int cpu_ = -1;
    cpu_set_t previous_{};
  };

  // Places the calling thread. With no CPUs configured the lease holds none
  // and changes nothing.
  Result<Lease> place();

  // How many transfers each CPU of cpus() runs now, in the same order.
  std::vector<size_t> running() const;

 private:
  explicit TransferCpus(numa::CpuList cpus) : cpus_(std::move(cpus)), running_(cpus_.size(), 0) {}
  void release(size_t slot);

  numa::CpuList cpus_;
  mutable std::mutex mutex_;
  std::vector<size_t> running_;
};
}  // namespace Atoll::transfer
