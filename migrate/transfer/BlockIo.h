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
      : io_(io), fd_(fd), geometry_(geometry), path_(std::move(path)) {}
  Result<void> forEach(const std::vector<uint64_t>& blocks, const Visitor& visit);

 private:
  BlockIoContext& io_;
  int fd_;
  const BlockHashMap& geometry_;
  std::string path_;
};

// Writes blocks asynchronously; `acquire` hands out a free buffer (waiting for
// earlier writes when all are busy), `write` queues it, `drain` waits for all.
class BlockWriter {
 public:
  using Completion = std::function<void(uint64_t index)>;
  BlockWriter(BlockIoContext& io, int fd, const BlockHashMap& geometry, std::string path,
              Completion done);
  Result<size_t> acquire();
  Result<void> write(size_t buffer, uint64_t index, uint32_t length);
  Result<void> drain();

 private:
  Result<void> reap(unsigned waitFor);

  BlockIoContext& io_;
  int fd_;
  const BlockHashMap& geometry_;
  std::string path_;
  Completion done_;
  std::vector<size_t> free_;
  std::vector<uint64_t> pendingIndex_;
  std::vector<uint32_t> pendingLength_;
  size_t inFlight_ = 0;
  Error firstError_;
  bool failed_ = false;
};

}  // namespace Atoll::transfer
