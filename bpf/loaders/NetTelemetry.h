#pragma once
// Loader and map reader of net_telemetry.bpf.c: cgroup_skb ingress/egress
// programs attached to one cgroup2 directory (the monitored subtree).
// Byte counts are skb->len at cgroup_skb: IP header + transport header +
// payload, no link-layer header (see net_telemetry.h).
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "util/Result.h"

struct net_telemetry;
struct net_cgroup_stats;
struct bpf_link;

namespace Atoll::telemetry {

struct NetCounters {
  uint64_t rxBytes = 0;
  uint64_t rxPackets = 0;
  uint64_t txBytes = 0;
  uint64_t txPackets = 0;
  uint64_t rxPayloadBytes = 0;
  uint64_t txPayloadBytes = 0;

  NetCounters& operator+=(const NetCounters& other);
};

NetCounters sumPerCpu(std::span<const net_cgroup_stats> perCpu);

// A socket endpoint: address (IPv6, or IPv4-mapped ::ffff:a.b.c.d), port
// (host order) and IP protocol (6 TCP, 17 UDP).
struct NetEndpoint {
  std::array<uint8_t, 16> addr{};
  uint16_t port = 0;
  uint8_t proto = 0;

  auto operator<=>(const NetEndpoint&) const = default;
};

// One cell of the traffic matrix: bytes between a cgroup and a peer endpoint.
struct NetFlow {
  uint64_t cgroupId = 0;
  std::array<uint8_t, 16> peer{};  // IPv6, or IPv4-mapped (::ffff:a.b.c.d)
  uint16_t peerPort = 0;
  uint8_t proto = 0;
  bool egress = false;
  uint64_t bytes = 0;  // IP + transport headers + payload
  uint64_t packets = 0;
  uint64_t payloadBytes = 0;

  NetEndpoint peerEndpoint() const { return {peer, peerPort, proto}; }
};

// "127.0.0.1" for IPv4-mapped addresses, RFC 5952 text for IPv6.
std::string peerAddressText(const std::array<uint8_t, 16>& peer);

struct NetTelemetryOptions {
  std::string cgroupPath;  // cgroup2 directory whose subtree is observed
  uint32_t maxCgroups = 10240;
  uint32_t maxFlows = 65536;
  bool trackFlows = true;
  // Also load the empty cgroup_skb programs (cost baseline) and attach them
  // to the same cgroup before the counting ones, so they are called first.
  bool withEmptyBaseline = false;
};

struct NetErrors {
  uint64_t mapFull = 0;
  uint64_t flowMapFull = 0;
};

class NetTelemetry {
 public:
  static Result<std::unique_ptr<NetTelemetry>> start(const NetTelemetryOptions& options);
  ~NetTelemetry();
  NetTelemetry(const NetTelemetry&) = delete;
  NetTelemetry& operator=(const NetTelemetry&) = delete;

  Result<std::unordered_map<uint64_t, NetCounters>> read() const;
  Result<std::vector<NetFlow>> readFlows() const;
  // The local endpoints seen in monitored cgroups' packets and the cgroup
  // owning each (the last one seen using it).
  Result<std::map<NetEndpoint, uint64_t>> readLocalEndpoints() const;
  Result<NetErrors> errors() const;
  // Drops ended cgroups' counters, their flows and the local endpoints they
  // own, walking each map once however many cgroups ended together.
  void forget(std::span<const uint64_t> cgroupIds) const;
  void forget(uint64_t cgroupId) const { forget(std::span<const uint64_t>(&cgroupId, 1)); }
  int ingressProgFd() const;
  int egressProgFd() const;
  // -1 unless withEmptyBaseline.
  int emptyIngressProgFd() const;
  int emptyEgressProgFd() const;
  // Detaches and attaches the empty baseline programs again, which puts them
  // after the counting programs (a cgroup runs its programs in attach order).
  Result<void> reattachEmptyBaseline();

 private:
  NetTelemetry(net_telemetry* skel, std::string path) : skel_(skel), path_(std::move(path)) {}
  Result<void> attachEmptyBaseline();
  net_telemetry* skel_;
  std::string path_;
  bpf_link* ingress_ = nullptr;
  bpf_link* egress_ = nullptr;
  bpf_link* emptyIngress_ = nullptr;
  bpf_link* emptyEgress_ = nullptr;
};

}  // namespace Atoll::telemetry
