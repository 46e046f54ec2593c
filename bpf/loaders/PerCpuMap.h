#pragma once
// Reads every entry of a per-CPU BPF hash map keyed by __u64, summing the
// CPUs' copies with the caller's function. One batched syscall per chunk
// where the kernel supports it, else key-by-key.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "util/Result.h"

namespace Atoll::telemetry {

template <typename Raw, typename Summed, typename SumFn>
Result<std::unordered_map<uint64_t, Summed>> readPerCpuHash(int mapFd, const std::string& name,
                                                            SumFn&& sum) {
  static_assert(sizeof(Raw) % 8 == 0, "per-CPU values are laid out at 8-byte strides");
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return Error::fromErrno("libbpf_num_possible_cpus", name, -cpus);
  std::unordered_map<uint64_t, Summed> out;
  constexpr uint32_t kChunk = 256;
  std::vector<uint64_t> keys(kChunk);
  std::vector<Raw> values(static_cast<size_t>(kChunk) * cpus);
  uint64_t batch = 0;
  bool first = true;
  for (;;) {
    uint32_t count = kChunk;
    int rc = bpf_map_lookup_batch(mapFd, first ? nullptr : &batch, &batch, keys.data(),
                                  values.data(), &count, nullptr);
    int err = rc < 0 ? errno : 0;
    if (rc < 0 && err != ENOENT) {
      // No batch support for this map type, or a bucket larger than the
      // chunk (ENOSPC): read key by key instead.
      out.clear();
      break;
    }
    for (uint32_t i = 0; i < count; ++i)
      out[keys[i]] = sum(std::span<const Raw>(values.data() + static_cast<size_t>(i) * cpus,
                                              static_cast<size_t>(cpus)));
    first = false;
    if (rc < 0) return out;  // ENOENT: that was the last chunk
  }
  // Key-by-key, for kernels without batched lookups on this map type.
  std::vector<Raw> one(static_cast<size_t>(cpus));
  uint64_t key = 0;
  uint64_t next = 0;
  const void* previous = nullptr;
  while (bpf_map_get_next_key(mapFd, previous, &next) == 0) {
    if (bpf_map_lookup_elem(mapFd, &next, one.data()) == 0)
      out[next] = sum(std::span<const Raw>(one.data(), one.size()));
    key = next;
    previous = &key;
  }
  return out;
}

// Reads indexes [0, count) of a per-CPU array map, handing each index's CPU
// copies to fn(index, span). Batched (one syscall per chunk of 512) where the
// kernel supports it, else index by index.
template <typename Raw, typename Fn>
Result<void> readPerCpuArray(int mapFd, uint32_t count, const std::string& name, Fn&& fn) {
  static_assert(sizeof(Raw) % 8 == 0, "per-CPU values are laid out at 8-byte strides");
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return Error::fromErrno("libbpf_num_possible_cpus", name, -cpus);
  constexpr uint32_t kChunk = 512;
  thread_local std::vector<uint32_t> keys;
  thread_local std::vector<Raw> values;
  keys.resize(kChunk);
  values.resize(static_cast<size_t>(kChunk) * static_cast<size_t>(cpus));
  uint32_t done = 0;
  bool batched = true;
  while (done < count && batched) {
    uint32_t want = std::min(kChunk, count - done);
    uint32_t got = want;
    // The batch token of array maps is the last index read; reading resumes
    // after it.
    uint32_t last = done - 1;
    uint32_t token = 0;
    int rc = bpf_map_lookup_batch(mapFd, done == 0 ? nullptr : &last, &token, keys.data(),
                                  values.data(), &got, nullptr);
    if (rc < 0 && errno != ENOENT) {
      if (done != 0) return Error::fromErrno("bpf_map_lookup_batch", name, errno);
      batched = false;  // no batch support: index by index below
      break;
    }
    for (uint32_t i = 0; i < got && keys[i] < count; ++i)
      fn(keys[i], std::span<const Raw>(values.data() + static_cast<size_t>(i) * cpus,
                                       static_cast<size_t>(cpus)));
    if (rc < 0 || got == 0) return ok();  // ENOENT: past the last index
    done = keys[got - 1] + 1;
  }
  if (batched) return ok();
  for (uint32_t index = 0; index < count; ++index) {
    if (bpf_map_lookup_elem(mapFd, &index, values.data()) != 0)
      return Error::fromErrno("bpf_map_lookup_elem", name, errno, std::to_string(index));
    fn(index, std::span<const Raw>(values.data(), static_cast<size_t>(cpus)));
  }
  return ok();
}

// Sums a per-CPU array of __u64 counters at one index.
inline Result<uint64_t> readPerCpuCounter(int mapFd, uint32_t index, const std::string& name) {
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return Error::fromErrno("libbpf_num_possible_cpus", name, -cpus);
  std::vector<uint64_t> values(static_cast<size_t>(cpus));
  if (bpf_map_lookup_elem(mapFd, &index, values.data()) != 0)
    return Error::fromErrno("bpf_map_lookup_elem", name, errno, std::to_string(index));
  uint64_t total = 0;
  for (uint64_t v : values) total += v;
  return total;
}

}  // namespace Atoll::telemetry
