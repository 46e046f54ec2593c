#pragma once
// The target side of image pre-copy: writes announced blocks into the staged
// temporary file, records progress durably at every round end and at
// checkpoints within a round, and commits under the final name only after the
// whole-image hash matches the source's and the data is fsynced.
#include <cstdint>
#include <functional>
#include <string>

#include "migrate/transfer/Bandwidth.h"
#include "migrate/transfer/Channel.h"
#include "migrate/transfer/StagingArea.h"
#include "migrate/transfer/TransferCpus.h"
#include "util/Result.h"

namespace Atoll::transfer {

struct ReceiverOptions {
  size_t buffersInFlight = 16;
  bool useIoUring = true;
  // Progress is made durable at least this often within a round.
  uint64_t checkpointBytes = 256ull << 20;
  // Paces reading from the socket (TCP then slows the sender down); may
  // change rate while the transfer runs. Not owned; null = unpaced.
  TransferLimiter* limiter = nullptr;
  // The CPUs a receiving session runs on (TransferCpus.h). Not owned; null =
  // wherever the scheduler puts it.
  TransferCpus* cpus = nullptr;
  // Checks and writes blocks on a thread of their own while the next is
  // received, instead of in place (Pipeline.h says when that pays).
  bool pipelined = false;
  // Observes each block written (tests use it to interrupt a round).
  std::function<void(uint64_t bytesThisSession)> onBlock;
};

struct ReceiveReport {
  std::string finalPath;
  std::string recordLayer;  // plaintext, or where TLS records were processed
  bool resumed = false;
  bool committed = false;
  uint32_t rounds = 0;
  uint64_t blocksWritten = 0;
  uint64_t bytesWritten = 0;
  int cpu = -1;  // the CPU the session ran on; -1: not placed
};

// Serves one session that began with `hello` (already read by the caller).
// Errors are also reported to the peer before returning.
Result<ReceiveReport> receiveImage(Channel& channel, const StagingArea& staging, const Hello& hello,
                                   const ReceiverOptions& options);

}  // namespace Atoll::transfer
