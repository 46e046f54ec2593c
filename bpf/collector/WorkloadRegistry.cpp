#include "bpf/collector/WorkloadRegistry.h"

#include <fnmatch.h>

#include <algorithm>
#include <set>

namespace Atoll::telemetry {

Reconciliation WorkloadRegistry::reconcile(const std::vector<DiscoveredCgroup>& found) {
  Reconciliation result;
  std::set<uint64_t> seen;
  for (const DiscoveredCgroup& cgroup : found) {
    if (!seen.insert(cgroup.cgroupId).second) continue;
    auto it = byCgroupId_.find(cgroup.cgroupId);
    if (it != byCgroupId_.end()) {
      bool gone = std::find(gone_.begin(), gone_.end(), it->second.number) != gone_.end();
      if (!gone && it->second.cgroup.path == cgroup.path) {
        // Same cgroup: names may change (libvirt domain renamed), the
        // number stays.
        it->second.cgroup.name = cgroup.name;
        it->second.cgroup.uuid = cgroup.uuid;
        continue;
      }
      result.ended.push_back(it->second);
      byCgroupId_.erase(it);
    }
    Workload workload{nextNumber_++, cgroup};
    byCgroupId_.emplace(cgroup.cgroupId, workload);
    result.born.push_back(std::move(workload));
  }
  for (auto it = byCgroupId_.begin(); it != byCgroupId_.end();) {
    bool gone = std::find(gone_.begin(), gone_.end(), it->second.number) != gone_.end();
    if (!seen.count(it->first) || gone) {
      result.ended.push_back(it->second);
      it = byCgroupId_.erase(it);
    } else {
      ++it;
    }
  }
  gone_.clear();
  return result;
}

void WorkloadRegistry::markGone(uint32_t number) {
  gone_.push_back(number);
}

std::optional<Workload> WorkloadRegistry::byCgroupId(uint64_t cgroupId) const {
  auto it = byCgroupId_.find(cgroupId);
  if (it == byCgroupId_.end()) return std::nullopt;
  return it->second;
}

bool selectorMatches(const std::string& selector, const std::string& relativePath) {
  return ::fnmatch(selector.c_str(), relativePath.c_str(), FNM_PATHNAME) == 0;
}

bool anySelectorMatches(const std::vector<std::string>& selectors,
                        const std::string& relativePath) {
  return std::any_of(selectors.begin(), selectors.end(),
                     [&](const std::string& s) { return selectorMatches(s, relativePath); });
}

}  // namespace Atoll::telemetry
