#include "migrate/transfer/ImageSender.h"

#include "migrate/transfer/Pipeline.h"
#include "migrate/transfer/StagingArea.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace Atoll::transfer {

namespace {
constexpr size_t kHeadroom = kFrameHeaderSize + kBlockPrefixSize;
// How often (in blocks) the sender looks for an error report from the peer.
constexpr uint64_t kPeerCheckInterval = 8;
// Frames queued to the sending thread at most; the buffer pool bounds the
// block frames among them.
constexpr size_t kFramesQueued = 64;

double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}
}  // namespace

ImageSender::ImageSender(UniqueFd fd, std::string path, const SenderOptions& options, uint64_t size,
                         bool seekData)
    : fd_(std::move(fd)),
      path_(std::move(path)),
      options_(options),
      sent_(size, options.blockSize),
      seekData_(seekData) {}

Result<std::unique_ptr<ImageSender>> ImageSender::open(const std::string& path,
                                                       const SenderOptions& options) {
  if (options.blockSize < kMinBlockSize || options.blockSize > kMaxBlockSize ||
      (options.blockSize & (options.blockSize - 1)) != 0) {
    return Error::invalid("send", path, std::to_string(options.blockSize),
                          "block size must be a power of two between 4 KiB and 16 MiB");
  }
  if (auto c = checkRemoteName(options.remoteName); !c) return c.error();
  int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (raw < 0) return Error::fromErrno("open", path, errno);
  UniqueFd fd(raw);
  struct stat st {};
  if (::fstat(raw, &st) != 0) return Error::fromErrno("fstat", path, errno);
  uint64_t size = 0;
  if (S_ISREG(st.st_mode)) {
    size = static_cast<uint64_t>(st.st_size);
  } else if (S_ISBLK(st.st_mode)) {
    if (::ioctl(raw, BLKGETSIZE64, &size) != 0)
      return Error::fromErrno("BLKGETSIZE64", path, errno);
  } else {
    return Error::invalid("send", path, "", "source must be a regular file or a block device");
  }
  std::unique_ptr<ImageSender> sender(
      new ImageSender(std::move(fd), path, options, size, S_ISREG(st.st_mode)));
  auto io = BlockIoContext::create(options.buffersInFlight, options.blockSize, kHeadroom,
                                   options.useIoUring);
  if (!io) return io.error();
  sender->io_ = std::move(*io);
  return sender;
}

Error ImageSender::withPeerReason(Error error) {
  // A receiver that fails reports why before it closes; prefer its words.
  if (channel_ != nullptr && channel_->inputPending()) {
    auto frame = channel_->recvFrame(64 * 1024);
    if (frame && frame->header.type == MessageType::kErrorReport) {
      auto report = decodeErrorReport(frame->payload);
      if (report) {
        return Error::invalid("transfer", channel_->peer(), path_,
                              "receiver refused: " + report->message);
      }
    }
  }
  return error;
}

Result<void> ImageSender::checkPeerError() {
  if (!channel_->socketReadable()) return ok();
  // The caller reads the report (withPeerReason) once the sending thread is
  // idle: the channel is not used from two threads at once.
  return Error::invalid("transfer", channel_->peer(), path_,
                        "unexpected message from the receiver");
}

Result<void> ImageSender::attach(std::unique_ptr<Channel> channel) {
  channel_ = std::move(channel);
  Hello hello{options_.transferId, sent_.imageSize(), options_.blockSize, options_.remoteName};
  if (auto s = channel_->sendFrame(encode(hello)); !s) return withPeerReason(s.error());
  auto frame = channel_->recvFrame();
  if (!frame) return frame.error();
  if (frame->header.type != MessageType::kHelloAck) {
    // Only an ErrorReport carries the receiver's words; any other payload
    // read as one would be reported as a refusal in garbled text.
    auto report = decodeErrorReport(frame->payload);
    return Error::invalid(
        "transfer", channel_->peer(), options_.remoteName,
        frame->header.type == MessageType::kErrorReport && report
            ? "receiver refused: " + report->message
            : std::string("expected HelloAck, got ") + messageTypeName(frame->header.type));
  }
  auto ack = decodeHelloAck(frame->payload);
  if (!ack) return ack.error();
  if (!sent_.assign(ack->heldHashes)) {
    return Error::invalid("transfer", channel_->peer(), std::to_string(ack->heldHashes.size()),
                          "receiver described a different number of blocks");
  }
  return ok();
}

Result<std::vector<bool>> ImageSender::holeMap(const std::vector<uint64_t>& blocks) const {
  std::vector<bool> hole(blocks.size(), false);
  if (!seekData_) return hole;
  for (size_t i = 0; i < blocks.size(); ++i) {
    uint64_t start = sent_.blockOffset(blocks[i]);
    uint64_t end = start + sent_.blockLength(blocks[i]);
    off_t data = ::lseek(fd_.get(), static_cast<off_t>(start), SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) {
        hole[i] = true;  // no data from here to the end of the file
        continue;
      }
      if (errno == EINVAL || errno == EOPNOTSUPP) return std::vector<bool>(blocks.size(), false);
      return Error::fromErrno("lseek SEEK_DATA", path_, errno, std::to_string(start));
    }
    hole[i] = static_cast<uint64_t>(data) >= end;
  }
  return hole;
}

Result<void> ImageSender::sendZero(SerialWorker& wire, uint64_t index, RoundReport& report) {
  auto posted = wire.post([this, frame = encodeZeroBlock(index)](bool skip) -> Result<void> {
    if (skip) return ok();
    if (options_.limiter != nullptr) options_.limiter->acquire(frame.size());
    return channel_->sendFrame(frame);
  });
  if (!posted) return posted;
  sent_.set(index, BlockHashMap::kZeroBlockHash);
  ++report.blocksSent;
  report.dirtyBytes += sent_.blockLength(index);
  return ok();
}

Result<void> ImageSender::sendBlock(SerialWorker& wire, BlockReader& reader, uint64_t index,
                                    size_t buffer, std::span<uint8_t> data, uint64_t hash,
                                    uint64_t checksum, RoundReport& report) {
  uint8_t* frame = io_.pool.frame(buffer) + (io_.pool.headroom() - kHeadroom);
  encodeBlockPrefix(frame, index, static_cast<uint32_t>(data.size()), checksum);
  size_t length = kHeadroom + data.size();
  // The frame goes out from the buffer it was read into; the buffer returns
  // to the reader once the socket has taken it.
  auto posted = wire.post([this, &reader, frame, length, buffer](bool skip) -> Result<void> {
    Result<void> sent = ok();
    if (!skip) {
      if (options_.limiter != nullptr) options_.limiter->acquire(length);
      sent = channel_->sendAll(frame, length);
    }
    reader.release(buffer);
    return sent;
  });
  if (!posted) return posted;
  sent_.set(index, hash);
  ++report.blocksSent;
  report.dirtyBytes += data.size();
  report.dataBytes += data.size();
  if (options_.onBlock) options_.onBlock(report.dirtyBytes);
  return ok();
}

Result<RoundReport> ImageSender::runRound(bool final, const std::vector<uint64_t>* dirtyHint) {
  if (channel_ == nullptr) {
    return Error::invalid("transfer", path_, "", "no connection: attach() first");
  }
  // The source must not change size under a pre-copy.
  if (seekData_) {
    struct stat st {};
    if (::fstat(fd_.get(), &st) != 0) return Error::fromErrno("fstat", path_, errno);
    if (static_cast<uint64_t>(st.st_size) != sent_.imageSize()) {
      return Error::invalid("transfer", path_, std::to_string(st.st_size),
                            "source changed size during the transfer");
    }
  }
  // Placed before the sending thread starts, so that it inherits the CPU.
  TransferCpus::Lease lease;
  if (options_.cpus != nullptr) {
    auto placed = options_.cpus->place();
    if (!placed) return placed.error();
    lease = std::move(*placed);
    // Best effort, as on the receiver: older kernels lack worker affinity.
    if (io_.ring != nullptr && lease.cpu() >= 0) (void)io_.ring->confineWorkers(lease.cpu());
  }
  RoundReport report;
  report.round = round_;
  report.final = final;
  report.cpu = lease.cpu();
  auto start = std::chrono::steady_clock::now();
  uint64_t wireStart = channel_->wireBytesSent();

  std::vector<uint64_t> candidates;
  if (dirtyHint == nullptr) {
    candidates.resize(sent_.blockCount());
    for (uint64_t i = 0; i < sent_.blockCount(); ++i) candidates[i] = i;
  } else {
    std::vector<bool> pick(sent_.blockCount(), false);
    for (uint64_t i : *dirtyHint) {
      if (i >= sent_.blockCount()) {
        return Error::invalid("transfer", path_, std::to_string(i),
                              "dirty block index beyond the end of the image");
      }
      pick[i] = true;
    }
    for (uint64_t i = 0; i < sent_.blockCount(); ++i) {
      if (pick[i] || sent_.get(i) == BlockHashMap::kNotHeld) candidates.push_back(i);
    }
  }
  report.blocksExamined = candidates.size();

  // Frames leave in place after each block is read and hashed or, pipelined,
  // on a sending thread while this one reads and hashes the next blocks
  // (Pipeline.h); a block's buffer is reused only after the socket took it.
  BlockReader reader(io_, fd_.get(), sent_, path_);
  reader.deferRelease();
  SerialWorker wire(options_.pipelined ? StepThread::kOwn : StepThread::kCaller, kFramesQueued,
                    [&reader] { reader.abandon(); });
  auto stop = [&](const Error& error) -> Error {
    auto drained = wire.drain();
    return withPeerReason(drained ? error : drained.error());
  };
  auto postFrame = [&](std::vector<uint8_t> frame) {
    return wire.post([this, frame = std::move(frame)](bool skip) -> Result<void> {
      if (skip) return ok();
      return channel_->sendFrame(frame);
    });
  };
  if (auto s = postFrame(encode(RoundBegin{round_, final})); !s) return stop(s.error());
  auto holes = holeMap(candidates);
  if (!holes) return stop(holes.error());
  std::vector<uint64_t> toRead;
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (!(*holes)[i]) {
      toRead.push_back(candidates[i]);
    } else if (sent_.get(candidates[i]) != BlockHashMap::kZeroBlockHash) {
      if (auto z = sendZero(wire, candidates[i], report); !z) return stop(z.error());
    }
  }
  uint64_t visited = 0;
  auto read = reader.forEach(
      toRead, [&](uint64_t index, size_t buffer, std::span<uint8_t> data) -> Result<void> {
        if (++visited % kPeerCheckInterval == 0) {
          if (auto c = checkPeerError(); !c) {
            reader.release(buffer);
            return c;
          }
        }
        if (BlockHashMap::isAllZero(data)) {
          reader.release(buffer);
          if (sent_.get(index) == BlockHashMap::kZeroBlockHash) return ok();
          return sendZero(wire, index, report);
        }
        // One hash pass serves both the block map and the frame checksum.
        uint64_t checksum = blockChecksum(index, data);
        uint64_t hash = BlockHashMap::fromChecksum(checksum);
        if (hash == sent_.get(index)) {
          reader.release(buffer);
          return ok();
        }
        return sendBlock(wire, reader, index, buffer, data, hash, checksum, report);
      });
  if (!read) return stop(read.error());

  if (auto s = postFrame(encode(RoundEnd{round_, report.blocksSent, report.dataBytes})); !s) {
    return stop(s.error());
  }
  if (auto d = wire.drain(); !d) return withPeerReason(d.error());
  auto frame = channel_->recvFrame(64 * 1024);
  if (!frame) return frame.error();
  if (frame->header.type != MessageType::kRoundAck) {
    auto error = decodeErrorReport(frame->payload);
    return Error::invalid(
        "transfer", channel_->peer(), path_,
        frame->header.type == MessageType::kErrorReport && error
            ? "receiver refused: " + error->message
            : std::string("expected RoundAck, got ") + messageTypeName(frame->header.type));
  }
  auto ack = decodeRoundAck(frame->payload);
  if (!ack || ack->round != round_) {
    return Error::invalid("transfer", channel_->peer(), std::to_string(round_),
                          "receiver acknowledged a different round");
  }
  report.wireBytes = channel_->wireBytesSent() - wireStart;
  report.seconds = secondsSince(start);
  ++round_;
  return report;
}

Result<VerifyReport> ImageSender::verify() {
  VerifyReport report;
  report.sourceHash = sent_.imageHash();
  if (auto s = channel_->sendFrame(encode(Verify{report.sourceHash})); !s) {
    return withPeerReason(s.error());
  }
  auto frame = channel_->recvFrame(64 * 1024);
  if (!frame) return frame.error();
  if (frame->header.type != MessageType::kVerifyResult) {
    auto error = decodeErrorReport(frame->payload);
    return Error::invalid(
        "verify", channel_->peer(), path_,
        frame->header.type == MessageType::kErrorReport && error
            ? "receiver refused: " + error->message
            : std::string("expected VerifyResult, got ") + messageTypeName(frame->header.type));
  }
  auto result = decodeVerifyResult(frame->payload);
  if (!result) return result.error();
  report.targetHash = result->receiverHash;
  report.match = result->ok && result->receiverHash == report.sourceHash;
  return report;
}

Result<PreCopyReport> runPreCopy(ImageSender& sender, const PreCopyPolicy& policy) {
  PreCopyReport out;
  auto record = [&](const RoundReport& r) {
    out.rounds.push_back(r);
    if (policy.onRound) policy.onRound(r);
  };
  uint32_t maxRounds = std::max<uint32_t>(policy.maxRounds, 1);
  if (maxRounds > 1) {
    auto first = sender.runRound(false);
    if (!first) return first.error();
    record(*first);
    // Keep going while the next round (about as dirty as the last) would not
    // fit in the downtime budget.
    while (out.rounds.size() + 1 < maxRounds) {
      const RoundReport& last = out.rounds.back();
      double rate = last.bytesPerSecond();
      double estimate = rate > 0 ? last.dirtyBytes / rate : 0;
      if (estimate * 1000.0 <= static_cast<double>(policy.downtimeBudget.count())) break;
      auto next = sender.runRound(false);
      if (!next) return next.error();
      record(*next);
    }
  }
  if (policy.quiesce) {
    if (auto q = policy.quiesce(); !q) return q.error();
  }
  auto last = sender.runRound(true);
  if (!last) return last.error();
  record(*last);
  auto verified = sender.verify();
  if (!verified) return verified.error();
  out.verify = *verified;
  if (!verified->match) {
    return Error::invalid(
        "verify", sender.channel()->peer(), std::to_string(verified->targetHash),
        "whole-image hash differs from the source's " + std::to_string(verified->sourceHash));
  }
  return out;
}

}  // namespace Atoll::transfer
