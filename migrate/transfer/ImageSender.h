#pragma once
// The source side of image pre-copy. Round 0 sends every block; each later
// round sends only blocks whose content differs from what the receiver holds
// (per-block hashes, optionally narrowed by a caller's dirty-block list).
// Every round is reported with its dirty bytes and rate so the caller can
// decide when the last round fits its downtime budget, quiesce the source and
// run the final round. Completion is a whole-image hash compared on both ends.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "migrate/transfer/Bandwidth.h"
#include "migrate/transfer/BlockHashMap.h"
#include "migrate/transfer/BlockIo.h"
#include "migrate/transfer/Channel.h"
#include "migrate/transfer/Pipeline.h"
#include "migrate/transfer/TransferCpus.h"
#include "util/Result.h"
#include "util/UniqueFd.h"

namespace Atoll::transfer {

inline constexpr uint32_t kDefaultBlockSize = 1u << 20;

struct SenderOptions {
  std::string remoteName;   // name under the receiver's staging directory
  uint64_t transferId = 0;  // same id on reconnect = resume
  uint32_t blockSize = kDefaultBlockSize;
  size_t buffersInFlight = 16;
  bool useIoUring = true;
  TransferLimiter* limiter = nullptr;  // not owned; may change rate live
  // The CPUs each round runs on (TransferCpus.h): the calling thread is
  // moved there for the round and given its CPUs back after. Not owned;
  // null = wherever the scheduler puts it.
  TransferCpus* cpus = nullptr;
  // Sends frames on a thread of their own while the next blocks are read and
  // hashed, instead of in place (Pipeline.h says when that pays).
  bool pipelined = false;
  // Called after every block sent (bytes so far in this round).
  std::function<void(uint64_t roundBytes)> onBlock;
};

struct RoundReport {
  uint32_t round = 0;
  bool final = false;
  uint64_t blocksExamined = 0;
  uint64_t blocksSent = 0;  // data and zero blocks
  uint64_t dirtyBytes = 0;  // image bytes in the blocks sent
  uint64_t dataBytes = 0;   // image bytes actually carried (zero blocks carry none)
  uint64_t wireBytes = 0;   // bytes on the socket, framing and TLS included
  double seconds = 0;
  int cpu = -1;  // the CPU the round ran on; -1: not placed
  double bytesPerSecond() const { return seconds > 0 ? wireBytes / seconds : 0; }
};

struct VerifyReport {
  bool match = false;
  uint64_t sourceHash = 0;
  uint64_t targetHash = 0;
};

class ImageSender {
 public:
  static Result<std::unique_ptr<ImageSender>> open(const std::string& path,
                                                   const SenderOptions& options);
  uint64_t imageSize() const { return sent_.imageSize(); }
  uint32_t roundsDone() const { return round_; }

  // Greets the receiver on a fresh connection and learns which blocks it
  // already holds: on a reconnect this turns the next round into a resume.
  Result<void> attach(std::unique_ptr<Channel> channel);
  // One round. `dirtyHint`: blocks the caller knows changed (only they, and
  // blocks the receiver lacks, are read); null = read and hash every block.
  Result<RoundReport> runRound(bool final, const std::vector<uint64_t>* dirtyHint = nullptr);
  // Whole-image hash on both ends; the receiver commits on a match.
  Result<VerifyReport> verify();
  Channel* channel() { return channel_.get(); }

 private:
  ImageSender(UniqueFd fd, std::string path, const SenderOptions& options, uint64_t size,
              bool seekData);
  Result<void> sendBlock(SerialWorker& wire, BlockReader& reader, uint64_t index, size_t buffer,
                         std::span<uint8_t> data, uint64_t hash, uint64_t checksum,
                         RoundReport& report);
  Result<void> sendZero(SerialWorker& wire, uint64_t index, RoundReport& report);
  Result<void> checkPeerError();
  Error withPeerReason(Error error);
  Result<std::vector<bool>> holeMap(const std::vector<uint64_t>& blocks) const;

  UniqueFd fd_;
  std::string path_;
  SenderOptions options_;
  BlockHashMap sent_;  // what the receiver holds, as far as we know
  BlockIoContext io_;
  std::unique_ptr<Channel> channel_;
  uint32_t round_ = 0;
  bool seekData_ = false;
};

// Runs rounds until the next one fits the downtime budget (or maxRounds),
// then quiesces the source, runs the final round and verifies.
struct PreCopyPolicy {
  uint32_t maxRounds = 10;
  std::chrono::milliseconds downtimeBudget{300};
  std::function<Result<void>()> quiesce;  // optional
  std::function<void(const RoundReport&)> onRound;
};
struct PreCopyReport {
  std::vector<RoundReport> rounds;
  VerifyReport verify;
};
Result<PreCopyReport> runPreCopy(ImageSender& sender, const PreCopyPolicy& policy);

}  // namespace Atoll::transfer
