#include "migrate/transfer/IoRing.h"

#include <sys/mman.h>

#include <cerrno>
#include <chrono>
#include <string>
#include <thread>
#include <utility>

namespace Atoll::transfer {

Result<std::unique_ptr<IoRing>> IoRing::create(unsigned entries) {
  std::unique_ptr<IoRing> ring(new IoRing());
  int rc = io_uring_queue_init(entries, &ring->ring_, 0);
  if (rc < 0) return Error::fromErrno("io_uring_setup", "io_uring", -rc, std::to_string(entries));
  ring->initialised_ = true;
  io_uring_probe* probe = io_uring_get_probe_ring(&ring->ring_);
  if (probe != nullptr) {
    for (int op = 0; op <= probe->last_op && op < 256; ++op) {
      ring->supported_[op] = io_uring_opcode_supported(probe, op) ? 1 : 0;
    }
    io_uring_free_probe(probe);
  }
  return ring;
}

IoRing::~IoRing() {
  if (initialised_) io_uring_queue_exit(&ring_);
}

bool IoRing::supports(uint8_t opcode) const {
  return supported_[opcode] != 0;
}

Result<io_uring_sqe*> IoRing::nextSqe() {
  if (io_uring_sqe* sqe = io_uring_get_sqe(&ring_)) return sqe;
  int rc = 0;
  do {
    rc = io_uring_submit(&ring_);
  } while (rc == -EINTR);
  io_uring_sqe* sqe = rc < 0 ? nullptr : io_uring_get_sqe(&ring_);
  if (sqe != nullptr) return sqe;
  // A submit that took no entry leaves the queue as full as it was.
  Error e = Error::fromErrno("io_uring_submit", "io_uring fd " + std::to_string(ring_.ring_fd),
                             rc < 0 ? -rc : EBUSY, std::to_string(ring_.sq.ring_entries));
  e.detail = "the submission queue is full and its entries could not be submitted";
  return e;
}

Result<void> IoRing::submitAndWait(unsigned waitFor) {
  for (;;) {
    int rc = io_uring_submit_and_wait(&ring_, waitFor);
    if (rc >= 0) return ok();
    if (rc == -EINTR) continue;
    return Error::fromErrno("io_uring_enter", "io_uring", -rc);
  }
}

void IoRing::awaitCompletion() {
  int rc = io_uring_submit_and_wait(&ring_, 1);
  if (rc < 0 && rc != -EINTR) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

Result<void> IoRing::registerBuffers(std::span<const iovec> buffers) {
  int rc = io_uring_register_buffers(&ring_, buffers.data(), static_cast<unsigned>(buffers.size()));
  if (rc < 0) {
    return Error::fromErrno("io_uring_register_buffers", "io_uring", -rc,
                            std::to_string(buffers.size()));
  }
  return ok();
}

namespace {
constexpr size_t kHugePageSize = 2 * 1024 * 1024;
}  // namespace

Result<void> IoRing::confineWorkers(int cpu) {
  int rc = 0;
  if (cpu < 0) {
    rc = io_uring_unregister_iowq_aff(&ring_);
  } else {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(static_cast<unsigned>(cpu), &one);
    rc = io_uring_register_iowq_aff(&ring_, sizeof one, &one);
  }
  if (rc < 0) {
    return Error::fromErrno("io_uring_register_iowq_aff", "io_uring", -rc, std::to_string(cpu));
  }
  return ok();
}

Result<BufferPool> BufferPool::create(size_t count, size_t dataSize, size_t headroom) {
  BufferPool pool;
  const size_t page = 4096;
  pool.count_ = count;
  pool.dataSize_ = dataSize;
  pool.headroom_ = headroom;
  // Page-aligned data: O_DIRECT-friendly and what READ_FIXED likes best.
  size_t headPages = (headroom + page - 1) / page * page;
  pool.stride_ = headPages + (dataSize + page - 1) / page * page;
  const size_t used = pool.stride_ * count;
  // Reserve a huge page more than needed so that the buffers can start on a
  // huge-page boundary.
  pool.mapped_ = used + kHugePageSize;
  void* base =
      ::mmap(nullptr, pool.mapped_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) {
    return Error::fromErrno("mmap", "buffer pool", errno, std::to_string(pool.mapped_));
  }
  pool.mapBase_ = base;
  auto* aligned = reinterpret_cast<uint8_t*>(
      (reinterpret_cast<uintptr_t>(base) + kHugePageSize - 1) & ~uintptr_t(kHugePageSize - 1));
  // Every byte moved is copied into and out of these buffers by the kernel,
  // so they are backed by transparent huge pages where the kernel allows it
  // (THP "madvise" or "always"). With 4 KiB pages each MiB costs 256 TLB
  // misses per copy, and those walks are expensive under nested or shadow
  // paging: in the plaintext benchmark on a paravirtualised guest, huge
  // pages raised throughput by 14-25 % (bench/RESULTS.md). It is advice:
  // where THP is off the pool works the same on small pages.
  (void)::madvise(aligned, used, MADV_HUGEPAGE);
  // Shift so that data() lands on a page boundary and headroom sits just
  // before it.
  pool.base_ = aligned + (headPages - headroom);
  pool.iovecs_ = std::make_unique<iovec[]>(count);
  for (size_t i = 0; i < count; ++i) {
    pool.iovecs_[i].iov_base = pool.frame(i);
    pool.iovecs_[i].iov_len = headroom + dataSize;
  }
  return pool;
}

BufferPool::BufferPool(BufferPool&& other) noexcept {
  *this = std::move(other);
}

BufferPool& BufferPool::operator=(BufferPool&& other) noexcept {
  if (this != &other) {
    if (mapBase_ != nullptr) ::munmap(mapBase_, mapped_);
    mapBase_ = std::exchange(other.mapBase_, nullptr);
    base_ = std::exchange(other.base_, nullptr);
    mapped_ = std::exchange(other.mapped_, 0);
    count_ = std::exchange(other.count_, 0);
    dataSize_ = other.dataSize_;
    headroom_ = other.headroom_;
    stride_ = other.stride_;
    iovecs_ = std::move(other.iovecs_);
  }
  return *this;
}

BufferPool::~BufferPool() {
  if (mapBase_ != nullptr) ::munmap(mapBase_, mapped_);
}

}  // namespace Atoll::transfer
