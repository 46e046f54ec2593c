#include "migrate/transfer/ImageReceiver.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "migrate/transfer/BlockIo.h"

namespace Atoll::transfer {

namespace {

// Error codes carried in ErrorReport frames.
enum ErrorCode : uint16_t {
  kErrorRefused = 1,   // the request is not acceptable (name, size)
  kErrorStorage = 2,   // the target's storage failed (e.g. full)
  kErrorProtocol = 3,  // a malformed or unexpected frame
};

class Session {
 public:
  Session(Channel& channel, StagedImage& image, BlockIoContext& io, const ReceiverOptions& options)
      : channel_(channel),
        image_(image),
        io_(io),
        options_(options),
        writer_(io, image.fd(), image.held(), image.tempPath(),
                [this](uint64_t index) { image_.held().set(index, writtenHash_[index]); }),
        writtenHash_(image.held().blockCount(), BlockHashMap::kNotHeld) {}

  Result<void> run(ReceiveReport& report);

 private:
  Result<void> onBlock(const FrameHeader& header, ReceiveReport& report);
  Result<void> onZeroBlock(std::span<const uint8_t> payload, ReceiveReport& report);
  Result<void> checkpoint();
  Result<uint64_t> hashStagedFile();

  Channel& channel_;
  StagedImage& image_;
  BlockIoContext& io_;
  const ReceiverOptions& options_;
  BlockWriter writer_;
  std::vector<uint64_t> writtenHash_;  // hash of the write in flight per block
  uint64_t sinceCheckpoint_ = 0;
  uint64_t sessionBytes_ = 0;
};

Result<void> Session::checkpoint() {
  if (auto d = writer_.drain(); !d) return d;
  sinceCheckpoint_ = 0;
  return image_.saveProgress();
}

Result<void> Session::onBlock(const FrameHeader& header, ReceiveReport& report) {
  BlockHashMap& held = image_.held();
  if (header.payloadLength < kBlockPrefixSize ||
      header.payloadLength - kBlockPrefixSize > held.blockSize()) {
    return Error::invalid("receive", channel_.peer(), std::to_string(header.payloadLength),
                          "Block frame larger than the announced block size");
  }
  auto buffer = writer_.acquire();
  if (!buffer) return buffer.error();
  // The index lands in the headroom, the data exactly where it will be
  // written from: no copy between the socket and the file.
  uint8_t* payload = io_.pool.data(*buffer) - kBlockPrefixSize;
  if (auto r = channel_.recvExact(payload, header.payloadLength); !r) return r;
  std::span<const uint8_t> bytes(payload, header.payloadLength);
  if (auto c = checkPayload(header, bytes); !c) return c;
  uint64_t index = *decodeBlockIndex(bytes);
  uint32_t length = header.payloadLength - kBlockPrefixSize;
  if (index >= held.blockCount() || length != held.blockLength(index)) {
    return Error::invalid("receive", channel_.peer(), std::to_string(index),
                          "Block index or length outside the announced image");
  }
  // Until the write completes the file holds neither old nor new content
  // for sure: a checkpoint in between must not claim the block.
  held.set(index, BlockHashMap::kNotHeld);
  writtenHash_[index] = BlockHashMap::fromChecksum(header.payloadChecksum);
  if (auto w = writer_.write(*buffer, index, length); !w) return w;
  ++report.blocksWritten;
  report.bytesWritten += length;
  sessionBytes_ += length;
  sinceCheckpoint_ += length;
  if (options_.onBlock) options_.onBlock(sessionBytes_);
  if (sinceCheckpoint_ >= options_.checkpointBytes) return checkpoint();
  return ok();
}

Result<void> Session::onZeroBlock(std::span<const uint8_t> payload, ReceiveReport& report) {
  BlockHashMap& held = image_.held();
  auto index = decodeBlockIndex(payload);
  if (!index) return index.error();
  if (payload.size() != kBlockPrefixSize || *index >= held.blockCount()) {
    return Error::invalid("receive", channel_.peer(), std::to_string(*index),
                          "ZeroBlock outside the announced image");
  }
  // A write to the same block may still be in flight.
  if (auto d = writer_.drain(); !d) return d;
  off_t offset = static_cast<off_t>(held.blockOffset(*index));
  off_t length = held.blockLength(*index);
  if (::fallocate(image_.fd(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length) != 0) {
    if (errno != EOPNOTSUPP) {
      return Error::fromErrno("fallocate PUNCH_HOLE", image_.tempPath(), errno,
                              std::to_string(*index));
    }
    // No hole punching here (e.g. a block device): write the zeros.
    std::vector<uint8_t> zeros(static_cast<size_t>(length), 0);
    if (::pwrite(image_.fd(), zeros.data(), zeros.size(), offset) != length) {
      return Error::fromErrno("write", image_.tempPath(), errno, std::to_string(*index));
    }
  }
  held.set(*index, BlockHashMap::kZeroBlockHash);
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
  for (;;) {
    auto header = channel_.recvHeader();
    if (!header) return header.error();
    if (header->type == MessageType::kBlock) {
      if (auto b = onBlock(*header, report); !b) return b;
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
        if (auto d = writer_.drain(); !d) return d;
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

void reportToPeer(Channel& channel, uint16_t code, const Error& error) {
  // Best effort: the connection may be the thing that failed.
  (void)channel.sendFrame(encode(ErrorReport{code, error.message()}));
}

}  // namespace

Result<ReceiveReport> receiveImage(Channel& channel, const StagingArea& staging, const Hello& hello,
                                   const ReceiverOptions& options) {
  ReceiveReport report;
  auto image = staging.prepare(hello);
  if (!image) {
    reportToPeer(channel, kErrorRefused, image.error());
    return image.error();
  }
  report.finalPath = image->finalPath();
  report.resumed = image->resumed();
  auto io = BlockIoContext::create(options.buffersInFlight, hello.blockSize, kBlockPrefixSize,
                                   options.useIoUring);
  if (!io) {
    reportToPeer(channel, kErrorStorage, io.error());
    return io.error();
  }
  if (auto s = channel.sendFrame(encode(HelloAck{image->held().hashes()})); !s) return s.error();
  Session session(channel, *image, *io, options);
  auto result = session.run(report);
  if (!result) {
    const Error& e = result.error();
    bool storage = e.errnum == ENOSPC || e.errnum == EIO || e.errnum == EDQUOT ||
                   e.operation.rfind("write", 0) == 0 || e.operation.rfind("fdatasync", 0) == 0;
    reportToPeer(channel, storage ? kErrorStorage : kErrorProtocol, e);
    return e;
  }
  return report;
}

}  // namespace Atoll::transfer
