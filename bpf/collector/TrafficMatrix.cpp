#include "bpf/collector/TrafficMatrix.h"

#include <utility>

namespace Atoll::telemetry {

std::vector<CgroupTraffic> joinLocalPeers(const std::vector<NetFlow>& flows,
                                          const std::map<NetEndpoint, uint64_t>& owners) {
  std::map<std::pair<uint64_t, uint64_t>, CgroupTraffic> cells;
  for (const NetFlow& flow : flows) {
    if (!flow.egress) continue;
    auto owner = owners.find(flow.peerEndpoint());
    if (owner == owners.end() || owner->second == flow.cgroupId) continue;
    CgroupTraffic& cell = cells[{flow.cgroupId, owner->second}];
    cell.fromCgroup = flow.cgroupId;
    cell.toCgroup = owner->second;
    cell.bytes += flow.bytes;
    cell.packets += flow.packets;
    cell.payloadBytes += flow.payloadBytes;
  }
  std::vector<CgroupTraffic> out;
  out.reserve(cells.size());
  for (auto& [key, cell] : cells) out.push_back(cell);
  return out;
}

}  // namespace Atoll::telemetry
