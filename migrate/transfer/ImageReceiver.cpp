#include "migrate/transfer/ImageReceiver.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "migrate/transfer/BlockIo.h"
#include "migrate/transfer/Pipeline.h"

namespace Atoll::transfer {

namespace {

// Error codes carried in ErrorReport frames.
enum ErrorCode : uint16_t {
  kErrorRefused = 1,   // the request is not acceptable (name, size)
  kErrorStorage = 2,   // the target's storage failed (e.g. full)
  kErrorProtocol = 3,  // a malformed or unexpected frame
};

// Steps queued to the worker before the receiving thread waits; the buffer
// pool bounds the data in them anyway.
constexpr size_t kStepsQueued = 64;

// The receiving thread reads frames from the socket into pool buffers; the
// worker checks each block's checksum and queues its write, in place by
// default or, pipelined, on a thread of its own while the next block is
// received (Pipeline.h).
class Session {
 public:
  Session(Channel& channel, StagedImage& image, BlockIoContext& io, const ReceiverOptions& options)
      : channel_(channel),
        image_(image),
        io_(io),
        options_(options),
        free_(io.pool.count()),
        writer_(io, image.fd(), image.held(), image.tempPath(),
                [this](uint64_t index, size_t buffer, bool written) {
                  if (written) image_.held().set(index, writtenHash_[index]);
                  free_.give(buffer);
                }),
        writtenHash_(image.held().blockCount(), BlockHashMap::kNotHeld),
        worker_(options.pipelined ? StepThread::kOwn : StepThread::kCaller, kStepsQueued,
                [this] { free_.close(); }) {}

  Result<void> run(ReceiveReport& report);

 private:
  // Receives a Block's payload together with the header of the frame after
  // it (a round always ends with RoundEnd, so one follows): one socket
  // operation per block instead of two.
  Result<FrameHeader> onBlock(const FrameHeader& header, ReceiveReport& report);
  Result<void> onZeroBlock(std::span<const uint8_t> payload, ReceiveReport& report);
  Result<size_t> takeBuffer();
  // Waits until every queued block is checked, written and completed.
  Result<void> quiesce();
  Result<void> checkpoint();
  Result<uint64_t> hashStagedFile();

  Channel& channel_;
  StagedImage& image_;
  BlockIoContext& io_;
  const ReceiverOptions& options_;
  FreeBuffers free_;
  BlockWriter writer_;                 // used by the worker only, or while it is idle
  std::vector<uint64_t> writtenHash_;  // hash of the write in flight per block
  uint64_t sinceCheckpoint_ = 0;
  uint64_t sessionBytes_ = 0;
  SerialWorker worker_;  // last: stops before the members its steps use
};

Result<size_t> Session::takeBuffer() {
  if (auto buffer = free_.tryTake()) return *buffer;
  // Every buffer is queued or being written: let the worker collect a
  // finished write once it has submitted the queued ones.
  auto posted = worker_.post([this](bool skip) -> Result<void> {
    if (skip) return ok();
    return writer_.waitForOne();
  });
  if (!posted) return posted.error();
  if (auto buffer = free_.take()) return *buffer;
  if (auto d = worker_.drain(); !d) return d.error();
  return Error::invalid("receive", channel_.peer(), "", "no buffer came back from the writer");
}

Result<void> Session::quiesce() {
  if (auto d = worker_.drain(); !d) return d;
  return writer_.drain();
}

Result<void> Session::checkpoint() {
  if (auto q = quiesce(); !q) return q;
  sinceCheckpoint_ = 0;
  return image_.saveProgress();
}

Result<FrameHeader> Session::onBlock(const FrameHeader& header, ReceiveReport& report) {
  const BlockHashMap& held = image_.held();
  if (header.payloadLength < kBlockPrefixSize ||
      header.payloadLength - kBlockPrefixSize > held.blockSize()) {
    return Error::invalid("receive", channel_.peer(), std::to_string(header.payloadLength),
                          "Block frame larger than the announced block size");
  }
  auto buffer = takeBuffer();
  if (!buffer) return buffer.error();
  if (options_.limiter != nullptr) {
    options_.limiter->acquire(kFrameHeaderSize + header.payloadLength);
  }
  // The index lands in the headroom, the data exactly where it will be
  // written from: no copy between the socket and the file.
  uint8_t* payload = io_.pool.data(*buffer) - kBlockPrefixSize;
  if (auto r = channel_.recvExact(payload, header.payloadLength + kFrameHeaderSize); !r) {
    free_.give(*buffer);
    return r.error();
  }
  auto next = decodeHeader({payload + header.payloadLength, kFrameHeaderSize});
  if (!next) {
    free_.give(*buffer);
    return next.error();
  }
  std::span<const uint8_t> bytes(payload, header.payloadLength);
  uint64_t index = *decodeBlockIndex(bytes);
  uint32_t length = header.payloadLength - kBlockPrefixSize;
  if (index >= held.blockCount() || length != held.blockLength(index)) {
    free_.give(*buffer);
    return Error::invalid("receive", channel_.peer(), std::to_string(index),
                          "Block index or length outside the announced image");
  }
  auto posted = worker_.post(
      [this, header, bytes, index, length, buffer = *buffer](bool skip) -> Result<void> {
        if (skip) {
          free_.give(buffer);
          return ok();
        }
        if (auto c = checkPayload(header, bytes); !c) {
          free_.give(buffer);
          return c;
        }
        // Until the write completes the file holds neither old nor new content
        // for sure: a checkpoint in between must not claim the block.
        image_.held().set(index, BlockHashMap::kNotHeld);
        writtenHash_[index] = BlockHashMap::fromChecksum(header.payloadChecksum);
        return writer_.write(buffer, index, length);
      });
  if (!posted) return posted.error();
  ++report.blocksWritten;
  report.bytesWritten += length;
  sessionBytes_ += length;
  sinceCheckpoint_ += length;
  if (options_.onBlock) options_.onBlock(sessionBytes_);
  if (sinceCheckpoint_ >= options_.checkpointBytes) {
    if (auto c = checkpoint(); !c) return c.error();
  }
  return *next;
}

Result<void> Session::onZeroBlock(std::span<const uint8_t> payload, ReceiveReport& report) {
  const BlockHashMap& held = image_.held();
  auto index = decodeBlockIndex(payload);
  if (!index) return index.error();
  if (payload.size() != kBlockPrefixSize || *index >= held.blockCount()) {
    return Error::invalid("receive", channel_.peer(), std::to_string(*index),
                          "ZeroBlock outside the announced image");
  }
  auto posted = worker_.post([this, index = *index](bool skip) -> Result<void> {
    if (skip) return ok();
    // A write to the same block may still be in flight.
    if (auto d = writer_.drain(); !d) return d;
    BlockHashMap& map = image_.held();
    off_t offset = static_cast<off_t>(map.blockOffset(index));
    off_t length = map.blockLength(index);
    if (::fallocate(image_.fd(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length) != 0) {
      if (errno != EOPNOTSUPP) {
        return Error::fromErrno("fallocate PUNCH_HOLE", image_.tempPath(), errno,
                                std::to_string(index));
      }
      // No hole punching here (e.g. a block device): write the zeros.
      std::vector<uint8_t> zeros(static_cast<size_t>(length), 0);
      ssize_t written = ::pwrite(image_.fd(), zeros.data(), zeros.size(), offset);
      if (written < 0) {
        return Error::fromErrno("write", image_.tempPath(), errno, std::to_string(index));
      }
      if (written != length) {
        // A short write sets no errno; a full device is the usual cause.
        return Error::invalid("write", image_.tempPath(), std::to_string(index),
                              "wrote " + std::to_string(written) + " of the block's " +
                                  std::to_string(length) + " bytes");
      }
    }
    map.set(index, BlockHashMap::kZeroBlockHash);
    return ok();
  });
  if (!posted) return posted;
  ++report.blocksWritten;
  return ok();
}

Result<uint64_t> Session::hashStagedFile() {
  BlockHashMap actual(image_.held().imageSize(), image_.held().blockSize());
  // Blocks entirely inside holes read as zeros: no need to read them.
  std::vector<uint64_t> all;
  for (uint64_t i = 0; i < actual.blockCount(); ++i) {
    off_t data = ::lseek(image_.fd(), static_cast<off_t>(actual.blockOffset(i)), SEEK_DATA);
    if ((data < 0 && errno == ENXIO) ||
        (data >= 0 &&
         static_cast<uint64_t>(data) >= actual.blockOffset(i) + actual.blockLength(i))) {
      actual.set(i, BlockHashMap::kZeroBlockHash);
    } else {
      all.push_back(i);
    }
  }
  BlockReader reader(io_, image_.fd(), actual, image_.tempPath());
  auto read = reader.forEach(all, [&](uint64_t index, size_t, std::span<uint8_t> data) {
    actual.set(index, BlockHashMap::hashBlock(index, data));
    return ok();
  });
  if (!read) return read.error();
  // What the file really holds is what a later resume may rely on.
  image_.held().assign(actual.hashes());
  return actual.imageHash();
}

Result<void> Session::run(ReceiveReport& report) {
  std::optional<FrameHeader> next;  // read along with the last Block
  for (;;) {
    Result<FrameHeader> header = next ? Result<FrameHeader>(*next) : channel_.recvHeader();
    next.reset();
    if (!header) return header.error();
    if (header->type == MessageType::kBlock) {
      auto following = onBlock(*header, report);
      if (!following) return following.error();
      next = *following;
      continue;
    }
    std::vector<uint8_t> payload(header->payloadLength);
    if (header->payloadLength > 64 * 1024) {
      return Error::invalid("receive", channel_.peer(), std::to_string(header->payloadLength),
                            std::string(messageTypeName(header->type)) + " payload too large");
    }
    if (auto r = channel_.recvExact(payload.data(), payload.size()); !r) return r;
    if (auto c = checkPayload(*header, payload); !c) return c;
    switch (header->type) {
      case MessageType::kZeroBlock:
        if (auto z = onZeroBlock(payload, report); !z) return z;
        break;
      case MessageType::kRoundBegin: {
        auto begin = decodeRoundBegin(payload);
        if (!begin) return begin.error();
        break;
      }
      case MessageType::kRoundEnd: {
        auto end = decodeRoundEnd(payload);
        if (!end) return end.error();
        if (auto c = checkpoint(); !c) return c;
        ++report.rounds;
        if (auto s = channel_.sendFrame(encode(RoundAck{end->round})); !s) return s;
        break;
      }
      case MessageType::kVerify: {
        auto verify = decodeVerify(payload);
        if (!verify) return verify.error();
        if (auto q = quiesce(); !q) return q;
        auto hash = hashStagedFile();
        if (!hash) return hash.error();
        bool match = *hash == verify->imageHash;
        if (match) {
          if (auto c = image_.commit(); !c) return c;
          report.committed = true;
        } else if (auto s = image_.saveProgress(); !s) {
          return s;
        }
        if (auto s = channel_.sendFrame(encode(VerifyResult{match, *hash})); !s) return s;
        return ok();
      }
      default:
        return Error::invalid("receive", channel_.peer(), messageTypeName(header->type),
                              "unexpected message during an image transfer");
    }
  }
}

}  // namespace

Result<ReceiveReport> receiveImage(Channel& channel, const StagingArea& staging, const Hello& hello,
                                   const ReceiverOptions& options) {
  ReceiveReport report;
  auto image = staging.prepare(hello);
  if (!image) return sendRefusal(channel, kErrorRefused, image.error());
  report.finalPath = image->finalPath();
  report.resumed = image->resumed();
  // Placed before the worker thread (when pipelined) and the ring exist, so
  // that both start on the transfer's CPU.
  TransferCpus::Lease lease;
  if (options.cpus != nullptr) {
    auto placed = options.cpus->place();
    if (!placed) return sendRefusal(channel, kErrorStorage, placed.error());
    lease = std::move(*placed);
  }
  report.cpu = lease.cpu();
  // Room after each block for the header of the frame that follows it.
  auto io = BlockIoContext::create(options.buffersInFlight, hello.blockSize + kFrameHeaderSize,
                                   kBlockPrefixSize, options.useIoUring);
  if (!io) return sendRefusal(channel, kErrorStorage, io.error());
  // Best effort: a kernel without worker affinity (before 5.14) still
  // receives, with the ring's workers wherever the scheduler puts them.
  if (io->ring != nullptr && lease.cpu() >= 0) (void)io->ring->confineWorkers(lease.cpu());
  if (auto s = channel.sendFrame(encode(HelloAck{image->held().hashes()})); !s) return s.error();
  Session session(channel, *image, *io, options);
  auto result = session.run(report);
  if (!result) {
    const Error& e = result.error();
    bool storage = e.errnum == ENOSPC || e.errnum == EIO || e.errnum == EDQUOT ||
                   e.operation.rfind("write", 0) == 0 || e.operation.rfind("fdatasync", 0) == 0;
    return sendRefusal(channel, storage ? kErrorStorage : kErrorProtocol, e);
  }
  return report;
}

}  // namespace Atoll::transfer
