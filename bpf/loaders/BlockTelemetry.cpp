#include "bpf/loaders/BlockTelemetry.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/types.h>

#include <cerrno>

#include "block_telemetry.h"
#include "block_telemetry.skel.h"
#include "bpf/loaders/PerCpuMap.h"

namespace Atoll::telemetry {

static_assert(BLOCK_TELEMETRY_HIST_SLOTS == kHistogramSlots);

BlockCounters& BlockCounters::operator+=(const BlockCounters& other) {
  readBytes += other.readBytes;
  writeBytes += other.writeBytes;
  readOps += other.readOps;
  writeOps += other.writeOps;
  latencyNs += other.latencyNs;
  for (int i = 0; i < kHistogramSlots; ++i) latencyHistogram[i] += other.latencyHistogram[i];
  return *this;
}

BlockCounters sumPerCpu(std::span<const block_cgroup_stats> perCpu) {
  BlockCounters total;
  for (const block_cgroup_stats& cpu : perCpu) {
    total.readBytes += cpu.read_bytes;
    total.writeBytes += cpu.write_bytes;
    total.readOps += cpu.read_ops;
    total.writeOps += cpu.write_ops;
    total.latencyNs += cpu.latency_ns;
    for (int i = 0; i < kHistogramSlots; ++i) total.latencyHistogram[i] += cpu.latency_hist[i];
  }
  return total;
}

Result<std::unique_ptr<BlockTelemetry>> BlockTelemetry::start(
    const BlockTelemetryOptions& options) {
  block_telemetry* skel = block_telemetry__open();
  if (!skel) return Error::fromErrno("bpf open", "block_telemetry", errno);
  std::unique_ptr<BlockTelemetry> self(new BlockTelemetry(skel));
  if (int rc = bpf_map__set_max_entries(skel->maps.block_stats, options.maxCgroups); rc < 0)
    return Error::fromErrno("bpf_map__set_max_entries", "block_telemetry/block_stats", -rc,
                            std::to_string(options.maxCgroups));
  if (int rc = block_telemetry__load(skel); rc < 0)
    return Error::fromErrno("bpf load (verifier or BTF; block_io_start needs Linux 6.5)",
                            "block_telemetry", -rc);
  if (int rc = block_telemetry__attach(skel); rc < 0)
    return Error::fromErrno(
        "bpf attach "
        "tp_btf/block_io_start,block_bio_backmerge,block_bio_frontmerge,block_rq_complete",
        "block_telemetry", -rc);
  return self;
}

BlockTelemetry::~BlockTelemetry() {
  block_telemetry__destroy(skel_);
}

Result<std::unordered_map<uint64_t, BlockCounters>> BlockTelemetry::read() const {
  return readPerCpuHash<block_cgroup_stats, BlockCounters>(
      bpf_map__fd(skel_->maps.block_stats), "block_telemetry/block_stats",
      [](std::span<const block_cgroup_stats> perCpu) { return sumPerCpu(perCpu); });
}

Result<BlockErrors> BlockTelemetry::errors() const {
  int fd = bpf_map__fd(skel_->maps.block_errors);
  auto full = readPerCpuCounter(fd, BLOCK_ERROR_MAP_FULL, "block_telemetry/block_errors");
  if (!full) return full.error();
  auto inflight = readPerCpuCounter(fd, BLOCK_ERROR_INFLIGHT_FULL, "block_telemetry/block_errors");
  if (!inflight) return inflight.error();
  return BlockErrors{*full, *inflight};
}

void BlockTelemetry::forget(uint64_t cgroupId) const {
  bpf_map_delete_elem(bpf_map__fd(skel_->maps.block_stats), &cgroupId);
}

}  // namespace Atoll::telemetry
