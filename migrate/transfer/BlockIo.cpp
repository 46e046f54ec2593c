#include "migrate/transfer/BlockIo.h"

#include <unistd.h>

#include <cerrno>

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

Result<void> BlockReader::forEach(const std::vector<uint64_t>& blocks, const Visitor& visit) {
  BufferPool& pool = io_.pool;
  if (io_.ring == nullptr) {
    for (uint64_t index : blocks) {
      uint32_t length = geometry_.blockLength(index);
      size_t done = 0;
      while (done < length) {
        ssize_t n = ::pread(fd_, pool.data(0) + done, length - done,
                            static_cast<off_t>(geometry_.blockOffset(index) + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Error::fromErrno("read", path_, errno, std::to_string(index));
        if (n == 0) {
          return Error::invalid("read", path_, std::to_string(index), "file shorter than expected");
        }
        done += static_cast<size_t>(n);
      }
      if (auto v = visit(index, 0, {pool.data(0), length}); !v) return v;
    }
    return ok();
  }
  IoRing& ring = *io_.ring;
  std::vector<size_t> free;
  for (size_t i = pool.count(); i-- > 0;) free.push_back(i);
  std::vector<uint64_t> blockOf(pool.count());
  size_t next = 0, inFlight = 0;
  auto queueRead = [&](size_t buffer, uint64_t index, uint32_t offsetInBlock) {
    io_uring_sqe* sqe = ring.nextSqe();
    uint32_t length = geometry_.blockLength(index) - offsetInBlock;
    uint8_t* at = pool.data(buffer) + offsetInBlock;
    off_t offset = static_cast<off_t>(geometry_.blockOffset(index) + offsetInBlock);
    if (io_.fixedBuffers) {
      io_uring_prep_read_fixed(sqe, fd_, at, length, offset, static_cast<int>(buffer));
    } else {
      io_uring_prep_read(sqe, fd_, at, length, offset);
    }
    // user_data: buffer in the low 32 bits, bytes already read in the high.
    sqe->user_data = buffer | (static_cast<uint64_t>(offsetInBlock) << 32);
  };
  auto refill = [&] {
    while (!free.empty() && next < blocks.size()) {
      size_t buffer = free.back();
      free.pop_back();
      blockOf[buffer] = blocks[next++];
      queueRead(buffer, blockOf[buffer], 0);
      ++inFlight;
    }
  };
  refill();
  Result<void> status = ok();
  while (inFlight > 0) {
    if (auto w = ring.submitAndWait(1); !w) return w.error();
    struct Done {
      size_t buffer;
      uint32_t bytes;
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
        return;
      }
      if (res == 0 && already + 0u < length) {
        if (status) {
          status = Error::invalid("read", path_, std::to_string(index),
                                  "file shorter than expected (did the source shrink?)");
        }
        --inFlight;
        return;
      }
      uint32_t total = already + static_cast<uint32_t>(res);
      if (total < length) {
        queueRead(buffer, index, total);  // short read: continue where it stopped
        return;
      }
      --inFlight;
      completed.push_back({buffer, total});
    });
    for (const Done& d : completed) {
      if (status) status = visit(blockOf[d.buffer], d.buffer, {pool.data(d.buffer), d.bytes});
      free.push_back(d.buffer);
    }
    if (status) refill();
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
      pendingLength_(io.pool.count()) {
  for (size_t i = io.pool.count(); i-- > 0;) free_.push_back(i);
}

Result<void> BlockWriter::reap(unsigned waitFor) {
  if (auto w = io_.ring->submitAndWait(waitFor); !w) return w.error();
  io_.ring->drain([&](uint64_t data, int res, unsigned) {
    size_t buffer = data & 0xffffffffu;
    uint32_t already = static_cast<uint32_t>(data >> 32);
    uint64_t index = pendingIndex_[buffer];
    if (res < 0 || res == 0) {
      if (!failed_) {
        failed_ = true;
        firstError_ = Error::fromErrno("write", path_, res < 0 ? -res : EIO, std::to_string(index));
      }
      --inFlight_;
      free_.push_back(buffer);
      return;
    }
    uint32_t total = already + static_cast<uint32_t>(res);
    if (total < pendingLength_[buffer]) {
      io_uring_sqe* sqe = io_.ring->nextSqe();
      uint8_t* at = io_.pool.data(buffer) + total;
      off_t offset = static_cast<off_t>(geometry_.blockOffset(index) + total);
      if (io_.fixedBuffers) {
        io_uring_prep_write_fixed(sqe, fd_, at, pendingLength_[buffer] - total, offset,
                                  static_cast<int>(buffer));
      } else {
        io_uring_prep_write(sqe, fd_, at, pendingLength_[buffer] - total, offset);
      }
      sqe->user_data = buffer | (static_cast<uint64_t>(total) << 32);
      return;
    }
    --inFlight_;
    free_.push_back(buffer);
    done_(index);
  });
  if (failed_) return firstError_;
  return ok();
}

Result<size_t> BlockWriter::acquire() {
  if (io_.ring == nullptr) return size_t{0};
  while (free_.empty()) {
    if (auto r = reap(1); !r) return r.error();
  }
  size_t buffer = free_.back();
  free_.pop_back();
  return buffer;
}

Result<void> BlockWriter::write(size_t buffer, uint64_t index, uint32_t length) {
  if (io_.ring == nullptr) {
    size_t done = 0;
    while (done < length) {
      ssize_t n = ::pwrite(fd_, io_.pool.data(buffer) + done, length - done,
                           static_cast<off_t>(geometry_.blockOffset(index) + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0)
        return Error::fromErrno("write", path_, n < 0 ? errno : EIO, std::to_string(index));
      done += static_cast<size_t>(n);
    }
    done_(index);
    return ok();
  }
  pendingIndex_[buffer] = index;
  pendingLength_[buffer] = length;
  io_uring_sqe* sqe = io_.ring->nextSqe();
  off_t offset = static_cast<off_t>(geometry_.blockOffset(index));
  if (io_.fixedBuffers) {
    io_uring_prep_write_fixed(sqe, fd_, io_.pool.data(buffer), length, offset,
                              static_cast<int>(buffer));
  } else {
    io_uring_prep_write(sqe, fd_, io_.pool.data(buffer), length, offset);
  }
  sqe->user_data = buffer;
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
