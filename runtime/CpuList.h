#pragma once
// CPU and NUMA node lists in the kernel's cpulist syntax ("0-3,8,10-11"), as
// cpuset.cpus and cpuset.mems use it. Parsing is pure so that configuration
// validation never touches the host.
#include <string>
#include <string_view>
#include <vector>

#include "util/Result.h"

namespace Atoll {

class CpuSet {
 public:
  // The kernel's NR_CPUS upper bound; a larger index is a typo, not a host.
  static constexpr unsigned kMaxIndex = 8191;

  CpuSet() = default;
  static Result<CpuSet> parse(std::string_view text);
  static Result<CpuSet> fromIndices(const std::vector<long long>& indices);

  const std::vector<unsigned>& indices() const { return indices_; }
  bool empty() const { return indices_.empty(); }
  size_t size() const { return indices_.size(); }
  CpuSet intersect(const CpuSet& other) const;
  // Canonical cpulist form, e.g. "0-3,8".
  std::string toString() const;

  bool operator==(const CpuSet&) const = default;

 private:
  explicit CpuSet(std::vector<unsigned> sorted) : indices_(std::move(sorted)) {}
  std::vector<unsigned> indices_;  // sorted, unique
};

}  // namespace Atoll
