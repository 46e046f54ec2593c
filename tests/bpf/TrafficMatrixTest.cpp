// The peer join of the traffic matrix on constructed flows.
#include "bpf/collector/TrafficMatrix.h"

#include <gtest/gtest.h>

namespace Atoll::telemetry {
namespace {

TEST(TrafficMatrix, JoinKeepsSenderViewAndLeavesOutSelfAndUnknownPeers) {
  NetEndpoint bEndpoint{{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1}, 5000, 17};
  NetEndpoint aEndpoint{bEndpoint.addr, 40000, 17};
  NetEndpoint outside{{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 9}, 53, 17};
  std::map<NetEndpoint, uint64_t> owners{{aEndpoint, 1}, {bEndpoint, 2}};
  auto flow = [](uint64_t cgroup, const NetEndpoint& peer, bool egress, uint64_t bytes) {
    NetFlow f;
    f.cgroupId = cgroup;
    f.peer = peer.addr;
    f.peerPort = peer.port;
    f.proto = peer.proto;
    f.egress = egress;
    f.bytes = bytes;
    f.packets = 1;
    f.payloadBytes = bytes - 28;
    return f;
  };
  std::vector<NetFlow> flows{flow(1, bEndpoint, true, 100), flow(2, aEndpoint, false, 100),
                             flow(2, aEndpoint, true, 50),  flow(1, aEndpoint, true, 999),
                             flow(1, outside, true, 77),    flow(1, bEndpoint, true, 30)};
  auto matrix = joinLocalPeers(flows, owners);
  ASSERT_EQ(matrix.size(), 2u);
  EXPECT_EQ(matrix[0], (CgroupTraffic{1, 2, 130, 2, 74}));
  EXPECT_EQ(matrix[1], (CgroupTraffic{2, 1, 50, 1, 22}));
}

}  // namespace
}  // namespace Atoll::telemetry
