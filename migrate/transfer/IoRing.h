#pragma once
// A small owner of one io_uring instance: the opcodes the running kernel
// supports (probed at run time, since production kernels are older than the
// build machine's), batched submission, and registered buffers.
#include <liburing.h>
#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <span>

#include "util/Result.h"

namespace Atoll::transfer {

class IoRing {
 public:
  // Creates a ring; an error (ENOSYS, EPERM where io_uring is disabled) lets
  // the caller fall back to plain system calls.
  static Result<std::unique_ptr<IoRing>> create(unsigned entries);
  ~IoRing();
  IoRing(const IoRing&) = delete;
  IoRing& operator=(const IoRing&) = delete;

  bool supports(uint8_t opcode) const;
  // A free submission entry. When the submission queue is full the queued
  // entries are submitted first to make room; a submit the kernel refuses
  // (EBUSY while completions overflow, ENOMEM, ...) is returned, not retried:
  // a kernel that kept refusing would hold the caller in the loop for good.
  Result<io_uring_sqe*> nextSqe();
  // Submits everything queued and waits for at least `waitFor` completions.
  Result<void> submitAndWait(unsigned waitFor);
  // Hands every ready completion to `handle(userData, res, flags)`; returns
  // how many there were.
  template <typename Handler>
  unsigned drain(Handler&& handle) {
    io_uring_cqe* cqe = nullptr;
    unsigned seen = 0;
    while (io_uring_peek_cqe(&ring_, &cqe) == 0 && cqe != nullptr) {
      uint64_t data = cqe->user_data;
      int res = cqe->res;
      unsigned flags = cqe->flags;
      io_uring_cqe_seen(&ring_, cqe);
      ++seen;
      handle(data, res, flags);
    }
    return seen;
  }
  // For a caller whose submit or wait failed while requests were in flight:
  // the kernel may still complete them into the caller's buffers, so before
  // it returns (and reuses or frees those) this asks the kernel to cancel
  // every request on the ring and hands each completion to `handle` as
  // drain() does, until `pending()` says none is left. A kernel before 5.19
  // refuses the cancel; there the requests run to their end (file reads
  // finish, socket operations carry a linked timeout).
  template <typename Pending, typename Handler>
  void cancelAndReap(Pending&& pending, Handler&& handle) {
    // Without room for the cancel the requests are waited out instead.
    bool cancelAnswered = true;
    if (auto sqe = nextSqe()) {
      io_uring_prep_cancel64(*sqe, 0, IORING_ASYNC_CANCEL_ANY);
      (*sqe)->user_data = kCancelTag;
      cancelAnswered = false;
    }
    for (;;) {
      drain([&](uint64_t data, int res, unsigned flags) {
        if (data == kCancelTag) {
          cancelAnswered = true;
        } else {
          handle(data, res, flags);
        }
      });
      // The cancel's own completion too: left in the queue, a later drain
      // would take it for one of the caller's requests.
      if (cancelAnswered && !pending()) return;
      awaitCompletion();
    }
  }
  // The user_data of cancelAndReap's request; callers use other values.
  static constexpr uint64_t kCancelTag = ~uint64_t{0};
  Result<void> registerBuffers(std::span<const iovec> buffers);
  // Runs this ring's worker threads (those that do the file I/O the kernel
  // cannot complete inline) on `cpu` only; -1 gives them the creator's CPUs
  // back.
  Result<void> confineWorkers(int cpu);

 private:
  IoRing() = default;
  // Submits and waits for one completion; failures are retried, after a
  // pause, by cancelAndReap's loop, which cannot give up while requests are
  // in flight.
  void awaitCompletion();
  io_uring ring_{};
  bool initialised_ = false;
  uint8_t supported_[256] = {};
};

// One page-aligned region split into equal buffers, registered with a ring
// for READ_FIXED / WRITE_FIXED. Each buffer keeps `headroom` bytes in front of
// its data so a frame header can be written there and the frame sent without
// copying the data.
class BufferPool {
 public:
  static Result<BufferPool> create(size_t count, size_t dataSize, size_t headroom);
  BufferPool() = default;
  BufferPool(BufferPool&& other) noexcept;
  BufferPool& operator=(BufferPool&& other) noexcept;
  ~BufferPool();

  size_t count() const { return count_; }
  size_t dataSize() const { return dataSize_; }
  size_t headroom() const { return headroom_; }
  // Start of buffer i (the headroom); data() is headroom bytes further.
  uint8_t* frame(size_t i) const { return base_ + i * stride_; }
  uint8_t* data(size_t i) const { return frame(i) + headroom_; }
  // The iovecs to register (one per buffer, covering headroom and data).
  std::span<const iovec> iovecs() const { return {iovecs_.get(), count_}; }

 private:
  void* mapBase_ = nullptr;
  uint8_t* base_ = nullptr;
  size_t mapped_ = 0;
  size_t count_ = 0;
  size_t dataSize_ = 0;
  size_t headroom_ = 0;
  size_t stride_ = 0;
  std::unique_ptr<iovec[]> iovecs_;
};

}  // namespace Atoll::transfer
