#pragma once
// Workload identity: which cgroups are workloads, and a stable workload
// number for each. A workload is born when its cgroup is first seen and ends
// when the cgroup vanishes or is found to be a different cgroup than before
// (a cgroup id or path reused by a new cgroup): numbers are never reused, so
// a successor never continues its predecessor's series.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace Atoll::telemetry {

// A workload cgroup found by discovery (libvirt or selectors).
struct DiscoveredCgroup {
  uint64_t cgroupId = 0;  // cgroup2 id (inode of the directory)
  std::string path;       // relative to the cgroup2 mount
  std::string name;       // libvirt domain name, else the path
  std::string uuid;       // libvirt domain UUID, empty for selector matches
};

struct Workload {
  uint32_t number = 0;  // the forecaster's series key, never reused
  DiscoveredCgroup cgroup;
};

struct Reconciliation {
  std::vector<Workload> born;
  std::vector<Workload> ended;
};

class WorkloadRegistry {
 public:
  // Brings the registry in line with one discovery pass.
  Reconciliation reconcile(const std::vector<DiscoveredCgroup>& found);
  // The collector saw the workload's kept cgroup descriptor fail (ENODEV):
  // its cgroup is gone even if a new one with the same id or path exists.
  // It ends at the next reconcile.
  void markGone(uint32_t number);

  const std::map<uint64_t, Workload>& active() const { return byCgroupId_; }
  std::optional<Workload> byCgroupId(uint64_t cgroupId) const;

 private:
  std::map<uint64_t, Workload> byCgroupId_;
  std::vector<uint32_t> gone_;
  uint32_t nextNumber_ = 1;
};

// Glob selectors over cgroup paths relative to the cgroup2 mount, e.g.
// "machine.slice/*": '*' and '?' never cross a '/', as in fnmatch(3) with
// FNM_PATHNAME.
bool selectorMatches(const std::string& selector, const std::string& relativePath);
bool anySelectorMatches(const std::vector<std::string>& selectors, const std::string& relativePath);

}  // namespace Atoll::telemetry
