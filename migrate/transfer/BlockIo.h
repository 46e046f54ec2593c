#pragma once
// Block-granular file I/O on io_uring: READ_FIXED / WRITE_FIXED into a
// registered BufferPool, many requests in flight, submitted in batches. Where
// the ring or those opcodes are missing, the same calls use pread/pwrite.
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "migrate/transfer/BlockHashMap.h"
#include "migrate/transfer/IoRing.h"
#include "migrate/transfer/Pipeline.h"
#include "util/Result.h"

namespace Atoll::transfer {

// A ring plus a registered pool sized for one transfer's blocks.
struct BlockIoContext {
  std::unique_ptr<IoRing> ring;  // null: system call fallback
  BufferPool pool;
  bool fixedBuffers = false;  // READ_FIXED/WRITE_FIXED usable
  // headroom: bytes reserved in front of each buffer's data for a frame header.
  static Result<BlockIoContext> create(size_t buffers, size_t blockSize, size_t headroom,
                                       bool useIoUring);
};

// Reads blocks with several requests in flight; `visit` sees each block as it
// arrives (in completion order) and the buffer is reused once it returns.
class BlockReader {
 public:
  using Visitor = std::function<Result<void>(uint64_t index, size_t buffer, std::span<uint8_t>)>;
  BlockReader(BlockIoContext& io, int fd, const BlockHashMap& geometry, std::string path)
      : io_(io), fd_(fd), geometry_(geometry), path_(std::move(path)), free_(io.pool.count()) {}
  // From now on a buffer handed to `visit` belongs to the visitor (even when
  // it returns an error) until release(buffer), which any thread may call: the
  // visitor can pass the block on to another thread instead of copying it.
  void deferRelease() { deferred_ = true; }
  void release(size_t buffer) { free_.give(buffer); }
  // Wakes a forEach that waits for released buffers: the consumer failed.
  void abandon() { free_.close(); }
  Result<void> forEach(const std::vector<uint64_t>& blocks, const Visitor& visit);

 private:
  Result<void> readSync(size_t buffer, uint64_t index);
  Error abandoned() const;

  BlockIoContext& io_;
  int fd_;
  const BlockHashMap& geometry_;
  std::string path_;
  FreeBuffers free_;
  bool deferred_ = false;
};

// Writes blocks asynchronously from buffers the caller owns: `write` queues
// one (its completion hands the block and buffer back through `done`, with
// whether the block reached the file),
// `waitForOne` waits until some write in flight completes, `drain` for all.
class BlockWriter {
 public:
  using Completion = std::function<void(uint64_t index, size_t buffer, bool written)>;
  BlockWriter(BlockIoContext& io, int fd, const BlockHashMap& geometry, std::string path,
              Completion done);
  Result<void> write(size_t buffer, uint64_t index, uint32_t length);
  Result<void> waitForOne();
  Result<void> drain();

 private:
  // Queues the write of pendingLength_[buffer] bytes from `offsetInBlock` on.
  Result<void> queueWrite(size_t buffer, uint32_t offsetInBlock);
  // A failed wait cancels and reaps every write in flight, each handed to
  // `done_`, before the error returns.
  Result<void> reap(unsigned waitFor);

  BlockIoContext& io_;
  int fd_;
  const BlockHashMap& geometry_;
  std::string path_;
  Completion done_;
  std::vector<uint64_t> pendingIndex_;
  std::vector<uint32_t> pendingLength_;
  size_t inFlight_ = 0;
  Error firstError_;
  bool failed_ = false;
};

}  // namespace Atoll::transfer
