#pragma once
// Loader and map reader of block_telemetry.bpf.c: per-cgroup block I/O bytes,
// operations and latency, charged to the cgroup that started each request.
#include <cstdint>
#include <memory>
#include <span>
#include <unordered_map>

#include "bpf/collector/Log2Histogram.h"
#include "util/Result.h"

struct block_telemetry;
struct block_cgroup_stats;

namespace Atoll::telemetry {

struct BlockCounters {
  uint64_t readBytes = 0;
  uint64_t writeBytes = 0;
  uint64_t readOps = 0;
  uint64_t writeOps = 0;
  uint64_t latencyNs = 0;
  Log2Histogram latencyHistogram{};  // in microseconds

  BlockCounters& operator+=(const BlockCounters& other);
};

BlockCounters sumPerCpu(std::span<const block_cgroup_stats> perCpu);

struct BlockTelemetryOptions {
  uint32_t maxCgroups = 10240;
};

struct BlockErrors {
  uint64_t mapFull = 0;
  uint64_t inflightFull = 0;
};

class BlockTelemetry {
 public:
  static Result<std::unique_ptr<BlockTelemetry>> start(const BlockTelemetryOptions& options);
  ~BlockTelemetry();
  BlockTelemetry(const BlockTelemetry&) = delete;
  BlockTelemetry& operator=(const BlockTelemetry&) = delete;

  Result<std::unordered_map<uint64_t, BlockCounters>> read() const;
  Result<BlockErrors> errors() const;
  void forget(uint64_t cgroupId) const;

 private:
  explicit BlockTelemetry(block_telemetry* skel) : skel_(skel) {}
  block_telemetry* skel_;
};

}  // namespace Atoll::telemetry
