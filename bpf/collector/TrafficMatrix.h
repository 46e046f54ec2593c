#pragma once
// The workload-to-workload traffic matrix: flows whose peer endpoint is a
// local socket of another monitored cgroup become cgroup -> cgroup cells.
// Each cell is taken from the sender's egress flows (the receiver's ingress
// sees the same packets; counting both would double them). Pure, so it is
// tested on constructed flows; the kernel test checks it on real traffic.
#include <cstdint>
#include <map>
#include <vector>

#include "bpf/loaders/NetTelemetry.h"

namespace Atoll::telemetry {

struct CgroupTraffic {
  uint64_t fromCgroup = 0;  // the sender
  uint64_t toCgroup = 0;    // the receiver
  uint64_t bytes = 0;       // IP + transport headers + payload
  uint64_t packets = 0;
  uint64_t payloadBytes = 0;

  bool operator==(const CgroupTraffic&) const = default;
};

// Cells ordered by (fromCgroup, toCgroup); traffic of a cgroup with itself
// and to endpoints no monitored cgroup owns is left out.
std::vector<CgroupTraffic> joinLocalPeers(const std::vector<NetFlow>& flows,
                                          const std::map<NetEndpoint, uint64_t>& owners);

}  // namespace Atoll::telemetry
