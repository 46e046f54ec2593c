#include "migrate/transfer/BlockIo.h"

#include <unistd.h>

#include <cerrno>
#include <utility>

namespace Atoll::transfer {

Result<BlockIoContext> BlockIoContext::create(size_t buffers, size_t blockSize, size_t headroom,
                                              bool useIoUring) {
  BlockIoContext io;
  auto pool = BufferPool::create(buffers, blockSize, headroom);
  if (!pool) return pool.error();
  io.pool = std::move(*pool);
  if (useIoUring) {
    auto ring = IoRing::create(static_cast<unsigned>(buffers * 2));
    if (ring) {
      io.ring = std::move(*ring);
      io.fixedBuffers = io.ring->supports(IORING_OP_READ_FIXED) &&
                        io.ring->supports(IORING_OP_WRITE_FIXED) &&
                        io.ring->registerBuffers(io.pool.iovecs()).has_value();
      if (!io.fixedBuffers &&
          !(io.ring->supports(IORING_OP_READ) && io.ring->supports(IORING_OP_WRITE))) {
        io.ring.reset();  // too old for file I/O on the ring: system calls
      }
    }
  }
  return io;
}

Error BlockReader::abandoned() const {
  return Error::invalid("read", path_, "", "the consumer of the blocks stopped");
}

Result<void> BlockReader::readSync(size_t buffer, uint64_t index) {
  uint32_t length = geometry_.blockLength(index);
  uint8_t* at = io_.pool.data(buffer);
  size_t done = 0;
  while (done < length) {
    ssize_t n = ::pread(fd_, at + done, length - done,
                        static_cast<off_t>(geometry_.blockOffset(index) + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::fromErrno("read", path_, errno, std::to_string(index));
    if (n == 0) {
      return Error::invalid("read", path_, std::to_string(index), "file shorter than expected");
    }
    done += static_cast<size_t>(n);
  }
  return ok();
}

Result<void> BlockReader::forEach(const std::vector<uint64_t>& blocks, const Visitor& visit) {
  BufferPool& pool = io_.pool;
  if (io_.ring == nullptr) {
    for (uint64_t index : blocks) {
      auto buffer = free_.take();
      if (!buffer) return abandoned();
      if (auto r = readSync(*buffer, index); !r) {
        free_.give(*buffer);
        return r;
      }
      auto v = visit(index, *buffer, {pool.data(*buffer), geometry_.blockLength(index)});
      if (!deferred_) free_.give(*buffer);
      if (!v) return v;
    }
    return ok();
  }
  IoRing& ring = *io_.ring;
  std::vector<uint64_t> blockOf(pool.count());
  size_t next = 0, inFlight = 0;
  auto queueRead = [&](size_t buffer, uint64_t index, uint32_t offsetInBlock) -> Result<void> {
    auto sqe = ring.nextSqe();
    if (!sqe) return sqe.error();
    uint32_t length = geometry_.blockLength(index) - offsetInBlock;
    uint8_t* at = pool.data(buffer) + offsetInBlock;
    off_t offset = static_cast<off_t>(geometry_.blockOffset(index) + offsetInBlock);
    if (io_.fixedBuffers) {
      io_uring_prep_read_fixed(*sqe, fd_, at, length, offset, static_cast<int>(buffer));
    } else {
      io_uring_prep_read(*sqe, fd_, at, length, offset);
    }
    // user_data: buffer in the low 32 bits, bytes already read in the high.
    (*sqe)->user_data = buffer | (static_cast<uint64_t>(offsetInBlock) << 32);
    return ok();
  };
  // Queues reads into every free buffer; with nothing in flight it waits for
  // the visitor's side to release one (deferred release).
  auto refill = [&]() -> Result<void> {
    while (next < blocks.size()) {
      auto buffer = inFlight == 0 ? free_.take() : free_.tryTake();
      if (!buffer) {
        if (inFlight == 0) return abandoned();
        break;
      }
      blockOf[*buffer] = blocks[next++];
      if (auto queued = queueRead(*buffer, blockOf[*buffer], 0); !queued) {
        free_.give(*buffer);
        return queued;
      }
      ++inFlight;
    }
    return ok();
  };
  Result<void> status = refill();
  while (inFlight > 0) {
    if (auto w = ring.submitAndWait(1); !w) {
      ring.cancelAndReap([&] { return inFlight > 0; },
                         [&](uint64_t data, int, unsigned) {
                           free_.give(data & 0xffffffffu);  // never handed to the visitor
                           --inFlight;
                         });
      return w.error();
    }
    struct Done {
      size_t buffer;
      uint32_t bytes;
      bool failed;
    };
    std::vector<Done> completed;
    ring.drain([&](uint64_t data, int res, unsigned) {
      size_t buffer = data & 0xffffffffu;
      uint32_t already = static_cast<uint32_t>(data >> 32);
      uint64_t index = blockOf[buffer];
      uint32_t length = geometry_.blockLength(index);
      if (res < 0) {
        if (status) status = Error::fromErrno("read", path_, -res, std::to_string(index));
        --inFlight;
        completed.push_back({buffer, 0, true});
        return;
      }
      if (res == 0 && already + 0u < length) {
        if (status) {
          status = Error::invalid("read", path_, std::to_string(index),
                                  "file shorter than expected (did the source shrink?)");
        }
        --inFlight;
        completed.push_back({buffer, 0, true});
        return;
      }
      uint32_t total = already + static_cast<uint32_t>(res);
      if (total < length) {
        // A short read continues where it stopped.
        auto queued = queueRead(buffer, index, total);
        if (queued) return;
        if (status) status = queued.error();
        --inFlight;
        completed.push_back({buffer, 0, true});
        return;
      }
      --inFlight;
      completed.push_back({buffer, total, false});
    });
    for (const Done& d : completed) {
      if (status && !d.failed) {
        status = visit(blockOf[d.buffer], d.buffer, {pool.data(d.buffer), d.bytes});
        if (!deferred_) free_.give(d.buffer);
      } else {
        free_.give(d.buffer);  // never handed to the visitor
      }
    }
    if (status) status = refill();
  }
  return status;
}

BlockWriter::BlockWriter(BlockIoContext& io, int fd, const BlockHashMap& geometry, std::string path,
                         Completion done)
    : io_(io),
      fd_(fd),
      geometry_(geometry),
      path_(std::move(path)),
      done_(std::move(done)),
      pendingIndex_(io.pool.count()),
      pendingLength_(io.pool.count()) {}

Result<void> BlockWriter::queueWrite(size_t buffer, uint32_t offsetInBlock) {
  auto sqe = io_.ring->nextSqe();
  if (!sqe) return sqe.error();
  uint8_t* at = io_.pool.data(buffer) + offsetInBlock;
  uint32_t length = pendingLength_[buffer] - offsetInBlock;
  off_t offset = static_cast<off_t>(geometry_.blockOffset(pendingIndex_[buffer]) + offsetInBlock);
  if (io_.fixedBuffers) {
    io_uring_prep_write_fixed(*sqe, fd_, at, length, offset, static_cast<int>(buffer));
  } else {
    io_uring_prep_write(*sqe, fd_, at, length, offset);
  }
  // user_data: buffer in the low 32 bits, bytes already written in the high.
  (*sqe)->user_data = buffer | (static_cast<uint64_t>(offsetInBlock) << 32);
  return ok();
}

Result<void> BlockWriter::reap(unsigned waitFor) {
  if (auto w = io_.ring->submitAndWait(waitFor); !w) {
    // Every write in flight ends before the error returns: the kernel would
    // still read from buffers that `done_` has not yet handed back, and their
    // completions would be taken for those of the next writes.
    io_.ring->cancelAndReap([&] { return inFlight_ > 0; },
                            [&](uint64_t data, int res, unsigned) {
                              size_t buffer = data & 0xffffffffu;
                              uint32_t already = static_cast<uint32_t>(data >> 32);
                              // A write cut short is not continued: the block
                              // is reported as not written.
                              bool whole = res > 0 && already + static_cast<uint32_t>(res) ==
                                                          pendingLength_[buffer];
                              --inFlight_;
                              done_(pendingIndex_[buffer], buffer, whole);
                            });
    return w.error();
  }
  auto fail = [&](Error error) {
    if (!failed_) {
      failed_ = true;
      firstError_ = std::move(error);
    }
  };
  io_.ring->drain([&](uint64_t data, int res, unsigned) {
    size_t buffer = data & 0xffffffffu;
    uint32_t already = static_cast<uint32_t>(data >> 32);
    uint64_t index = pendingIndex_[buffer];
    if (res <= 0) {
      fail(Error::fromErrno("write", path_, res < 0 ? -res : EIO, std::to_string(index)));
      --inFlight_;
      done_(index, buffer, false);
      return;
    }
    uint32_t total = already + static_cast<uint32_t>(res);
    if (total < pendingLength_[buffer]) {
      // A short write continues where it stopped.
      auto queued = queueWrite(buffer, total);
      if (queued) return;
      fail(queued.error());
      --inFlight_;
      done_(index, buffer, false);
      return;
    }
    --inFlight_;
    done_(index, buffer, true);
  });
  if (failed_) return firstError_;
  return ok();
}

Result<void> BlockWriter::waitForOne() {
  if (io_.ring == nullptr || inFlight_ == 0) return ok();
  size_t before = inFlight_;
  while (inFlight_ == before) {
    if (auto r = reap(1); !r) return r.error();
  }
  return ok();
}

Result<void> BlockWriter::write(size_t buffer, uint64_t index, uint32_t length) {
  if (io_.ring == nullptr) {
    size_t done = 0;
    while (done < length) {
      ssize_t n = ::pwrite(fd_, io_.pool.data(buffer) + done, length - done,
                           static_cast<off_t>(geometry_.blockOffset(index) + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        int error = n < 0 ? errno : EIO;
        done_(index, buffer, false);
        return Error::fromErrno("write", path_, error, std::to_string(index));
      }
      done += static_cast<size_t>(n);
    }
    done_(index, buffer, true);
    return ok();
  }
  pendingIndex_[buffer] = index;
  pendingLength_[buffer] = length;
  if (auto queued = queueWrite(buffer, 0); !queued) {
    done_(index, buffer, false);
    return queued;
  }
  ++inFlight_;
  // Submit now without waiting; completions are collected on later calls.
  return reap(0);
}

Result<void> BlockWriter::drain() {
  if (io_.ring == nullptr) return ok();
  while (inFlight_ > 0) {
    if (auto r = reap(1); !r) return r.error();
  }
  return ok();
}

}  // namespace Atoll::transfer
