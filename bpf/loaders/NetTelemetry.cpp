#include "bpf/loaders/NetTelemetry.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/types.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "bpf/loaders/PerCpuMap.h"
#include "net_telemetry.h"
#include "net_telemetry.skel.h"
#include "util/UniqueFd.h"

namespace Atoll::telemetry {

NetCounters& NetCounters::operator+=(const NetCounters& other) {
  rxBytes += other.rxBytes;
  rxPackets += other.rxPackets;
  txBytes += other.txBytes;
  txPackets += other.txPackets;
  rxPayloadBytes += other.rxPayloadBytes;
  txPayloadBytes += other.txPayloadBytes;
  return *this;
}

NetCounters sumPerCpu(std::span<const net_cgroup_stats> perCpu) {
  NetCounters total;
  for (const net_cgroup_stats& cpu : perCpu) {
    total.rxBytes += cpu.rx_bytes;
    total.rxPackets += cpu.rx_packets;
    total.txBytes += cpu.tx_bytes;
    total.txPackets += cpu.tx_packets;
    total.rxPayloadBytes += cpu.rx_payload_bytes;
    total.txPayloadBytes += cpu.tx_payload_bytes;
  }
  return total;
}

std::string peerAddressText(const std::array<uint8_t, 16>& peer) {
  static constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  char text[INET6_ADDRSTRLEN] = {};
  if (std::memcmp(peer.data(), kMappedPrefix, sizeof(kMappedPrefix)) == 0) {
    ::inet_ntop(AF_INET, peer.data() + 12, text, sizeof(text));
  } else {
    ::inet_ntop(AF_INET6, peer.data(), text, sizeof(text));
  }
  return text;
}

Result<std::unique_ptr<NetTelemetry>> NetTelemetry::start(const NetTelemetryOptions& options) {
  UniqueFd cgroupFd(::open(options.cgroupPath.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cgroupFd.valid()) return Error::fromErrno("open", options.cgroupPath, errno);
  net_telemetry* skel = net_telemetry__open();
  if (!skel) return Error::fromErrno("bpf open", "net_telemetry", errno);
  std::unique_ptr<NetTelemetry> self(new NetTelemetry(skel, options.cgroupPath));
  skel->rodata->track_flows = options.trackFlows ? 1 : 0;
  bpf_program__set_autoload(skel->progs.empty_ingress, options.withEmptyBaseline);
  bpf_program__set_autoload(skel->progs.empty_egress, options.withEmptyBaseline);
  if (int rc = bpf_map__set_max_entries(skel->maps.net_stats, options.maxCgroups); rc < 0)
    return Error::fromErrno("bpf_map__set_max_entries", "net_telemetry/net_stats", -rc,
                            std::to_string(options.maxCgroups));
  if (int rc = bpf_map__set_max_entries(skel->maps.net_flows, options.maxFlows); rc < 0)
    return Error::fromErrno("bpf_map__set_max_entries", "net_telemetry/net_flows", -rc,
                            std::to_string(options.maxFlows));
  if (int rc = net_telemetry__load(skel); rc < 0)
    return Error::fromErrno("bpf load (verifier or BTF)", "net_telemetry", -rc);
  if (options.withEmptyBaseline) {
    if (auto attached = self->attachEmptyBaseline(); !attached) return attached.error();
  }
  self->ingress_ = bpf_program__attach_cgroup(skel->progs.net_ingress, cgroupFd.get());
  if (!self->ingress_)
    return Error::fromErrno("bpf attach cgroup_skb/ingress", options.cgroupPath, errno);
  self->egress_ = bpf_program__attach_cgroup(skel->progs.net_egress, cgroupFd.get());
  if (!self->egress_)
    return Error::fromErrno("bpf attach cgroup_skb/egress", options.cgroupPath, errno);
  return self;
}

Result<void> NetTelemetry::attachEmptyBaseline() {
  UniqueFd cgroupFd(::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cgroupFd.valid()) return Error::fromErrno("open", path_, errno);
  emptyIngress_ = bpf_program__attach_cgroup(skel_->progs.empty_ingress, cgroupFd.get());
  if (!emptyIngress_)
    return Error::fromErrno("bpf attach cgroup_skb/ingress (empty)", path_, errno);
  emptyEgress_ = bpf_program__attach_cgroup(skel_->progs.empty_egress, cgroupFd.get());
  if (!emptyEgress_) return Error::fromErrno("bpf attach cgroup_skb/egress (empty)", path_, errno);
  return ok();
}

Result<void> NetTelemetry::reattachEmptyBaseline() {
  if (!bpf_program__autoload(skel_->progs.empty_egress))
    return Error::invalid("reattach", "net_telemetry/empty_egress", "",
                          "the empty baseline was not loaded (withEmptyBaseline)");
  bpf_link__destroy(emptyIngress_);
  bpf_link__destroy(emptyEgress_);
  emptyIngress_ = nullptr;
  emptyEgress_ = nullptr;
  return attachEmptyBaseline();
}

NetTelemetry::~NetTelemetry() {
  bpf_link__destroy(emptyEgress_);
  bpf_link__destroy(emptyIngress_);
  bpf_link__destroy(egress_);
  bpf_link__destroy(ingress_);
  net_telemetry__destroy(skel_);
}

Result<std::unordered_map<uint64_t, NetCounters>> NetTelemetry::read() const {
  return readPerCpuHash<net_cgroup_stats, NetCounters>(
      bpf_map__fd(skel_->maps.net_stats), "net_telemetry/net_stats",
      [](std::span<const net_cgroup_stats> perCpu) { return sumPerCpu(perCpu); });
}

Result<std::vector<NetFlow>> NetTelemetry::readFlows() const {
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return Error::fromErrno("libbpf_num_possible_cpus", "net_flows", -cpus);
  int fd = bpf_map__fd(skel_->maps.net_flows);
  std::vector<NetFlow> flows;
  std::vector<net_flow_stats> values(static_cast<size_t>(cpus));
  net_flow_key key{};
  net_flow_key next{};
  const void* previous = nullptr;
  while (bpf_map_get_next_key(fd, previous, &next) == 0) {
    if (bpf_map_lookup_elem(fd, &next, values.data()) == 0) {
      NetFlow flow;
      flow.cgroupId = next.cgroup_id;
      std::memcpy(flow.peer.data(), next.peer_addr, 16);
      flow.egress = next.egress != 0;
      flow.proto = next.proto;
      flow.peerPort = next.peer_port;
      for (const net_flow_stats& v : values) {
        flow.bytes += v.bytes;
        flow.packets += v.packets;
        flow.payloadBytes += v.payload_bytes;
      }
      flows.push_back(flow);
    }
    key = next;
    previous = &key;
  }
  return flows;
}

Result<std::map<NetEndpoint, uint64_t>> NetTelemetry::readLocalEndpoints() const {
  int fd = bpf_map__fd(skel_->maps.local_endpoints);
  std::map<NetEndpoint, uint64_t> owners;
  net_endpoint key{};
  net_endpoint next{};
  const void* previous = nullptr;
  while (bpf_map_get_next_key(fd, previous, &next) == 0) {
    uint64_t cgroupId = 0;
    if (bpf_map_lookup_elem(fd, &next, &cgroupId) == 0) {
      NetEndpoint endpoint;
      std::memcpy(endpoint.addr.data(), next.addr, 16);
      endpoint.port = next.port;
      endpoint.proto = next.proto;
      owners[endpoint] = cgroupId;
    }
    key = next;
    previous = &key;
  }
  if (errno != ENOENT)
    return Error::fromErrno("bpf_map_get_next_key", "net_telemetry/local_endpoints", errno);
  return owners;
}

Result<NetErrors> NetTelemetry::errors() const {
  int fd = bpf_map__fd(skel_->maps.net_errors);
  auto full = readPerCpuCounter(fd, NET_ERROR_MAP_FULL, "net_telemetry/net_errors");
  if (!full) return full.error();
  auto flows = readPerCpuCounter(fd, NET_ERROR_FLOW_MAP_FULL, "net_telemetry/net_errors");
  if (!flows) return flows.error();
  return NetErrors{*full, *flows};
}

namespace {

// The keys of hash map `fd` that `selects` accepts, in one walk. They are
// collected before any is deleted: a hash map's next key after a deleted one
// restarts the walk at the beginning.
template <typename Key, typename Selects>
std::vector<Key> keysWhere(int fd, Selects selects) {
  std::vector<Key> keys;
  Key key{};
  Key next{};
  const void* previous = nullptr;
  while (bpf_map_get_next_key(fd, previous, &next) == 0) {
    if (selects(next)) keys.push_back(next);
    key = next;
    previous = &key;
  }
  return keys;
}

}  // namespace

void NetTelemetry::forget(std::span<const uint64_t> cgroupIds) const {
  if (cgroupIds.empty()) return;
  std::vector<uint64_t> ended(cgroupIds.begin(), cgroupIds.end());
  std::sort(ended.begin(), ended.end());
  auto isEnded = [&](uint64_t id) { return std::binary_search(ended.begin(), ended.end(), id); };

  const int statsFd = bpf_map__fd(skel_->maps.net_stats);
  for (uint64_t id : ended) bpf_map_delete_elem(statsFd, &id);

  // net_flows is not an LRU map: flows of ended cgroups would stay until it
  // is full and no new peer could be counted.
  const int flowsFd = bpf_map__fd(skel_->maps.net_flows);
  for (const net_flow_key& flow : keysWhere<net_flow_key>(
           flowsFd, [&](const net_flow_key& key) { return isEnded(key.cgroup_id); }))
    bpf_map_delete_elem(flowsFd, &flow);

  // An endpoint keeps its owner until a packet of another cgroup uses it, so
  // an ended owner would be credited with traffic to its reused port.
  const int endpointsFd = bpf_map__fd(skel_->maps.local_endpoints);
  for (const net_endpoint& endpoint :
       keysWhere<net_endpoint>(endpointsFd, [&](const net_endpoint& key) {
         uint64_t owner = 0;
         return bpf_map_lookup_elem(endpointsFd, &key, &owner) == 0 && isEnded(owner);
       }))
    bpf_map_delete_elem(endpointsFd, &endpoint);
}

int NetTelemetry::ingressProgFd() const {
  return bpf_program__fd(skel_->progs.net_ingress);
}
int NetTelemetry::egressProgFd() const {
  return bpf_program__fd(skel_->progs.net_egress);
}

int NetTelemetry::emptyIngressProgFd() const {
  return bpf_program__autoload(skel_->progs.empty_ingress)
             ? bpf_program__fd(skel_->progs.empty_ingress)
             : -1;
}
int NetTelemetry::emptyEgressProgFd() const {
  return bpf_program__autoload(skel_->progs.empty_egress)
             ? bpf_program__fd(skel_->progs.empty_egress)
             : -1;
}

}  // namespace Atoll::telemetry
