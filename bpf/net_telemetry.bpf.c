// SPDX-License-Identifier: GPL-2.0
/* Per-cgroup network counters and the cgroup-to-peer traffic matrix, from
 * cgroup_skb programs attached to the monitored cgroup subtree. Every packet
 * is let through: these programs observe, never filter. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "net_telemetry.h"

char LICENSE[] SEC("license") = "GPL";

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define PROTO_TCP 6
#define PROTO_UDP 17
#define ALLOW 1

/* Baselines for the per-packet cost benchmark: the same attach points doing
 * nothing. Not auto-loaded with the others. */
SEC("cgroup_skb/ingress")
int empty_ingress(struct __sk_buff *skb)
{
	return ALLOW;
}

SEC("cgroup_skb/egress")
int empty_egress(struct __sk_buff *skb)
{
	return ALLOW;
}

/* Tunable: record the peer matrix (one more hash update per packet). */
const volatile __u8 track_flows = 1;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, NET_TELEMETRY_DEFAULT_CGROUPS);
	__type(key, __u64);
	__type(value, struct net_cgroup_stats);
} net_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, NET_TELEMETRY_DEFAULT_FLOWS);
	__type(key, struct net_flow_key);
	__type(value, struct net_flow_stats);
} net_flows SEC(".maps");

/* Local endpoint -> owning cgroup id; least recently used ones go first. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NET_TELEMETRY_DEFAULT_FLOWS);
	__type(key, struct net_endpoint);
	__type(value, __u64);
} local_endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NET_ERROR_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} net_errors SEC(".maps");

static __always_inline void count_error(__u32 which)
{
	__u64 *counter = bpf_map_lookup_elem(&net_errors, &which);

	if (counter)
		*counter += 1;
}

/* What the programs read of a packet's headers. */
struct packet_view {
	__u8 peer[16];
	struct net_endpoint local;
	__u16 peer_port;
};

/* Length of the IP and transport headers, and both endpoints; 0 when the
 * packet is not TCP or UDP over IP. */
static __always_inline __u32 header_length(struct __sk_buff *skb, int egress,
					   struct packet_view *view)
{
	__u32 ip_len = 0, transport_len = 0;
	__u8 proto = 0;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
			return 0;
		ip_len = ip.ihl * 4;
		proto = ip.protocol;
		__u32 peer = egress ? ip.daddr : ip.saddr;
		__u32 local = egress ? ip.saddr : ip.daddr;

		view->peer[10] = 0xff;
		view->peer[11] = 0xff;
		__builtin_memcpy(view->peer + 12, &peer, 4);
		view->local.addr[10] = 0xff;
		view->local.addr[11] = 0xff;
		__builtin_memcpy(view->local.addr + 12, &local, 4);
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)))
			return 0;
		ip_len = sizeof(ip6);
		proto = ip6.nexthdr; /* extension headers: payload not split */
		__builtin_memcpy(view->peer, egress ? (void *)&ip6.daddr : (void *)&ip6.saddr, 16);
		__builtin_memcpy(view->local.addr, egress ? (void *)&ip6.saddr : (void *)&ip6.daddr,
				 16);
	} else {
		return 0;
	}
	if (proto == PROTO_TCP) {
		__u8 doff_byte;

		/* doff is the high nibble of byte 12 of the TCP header. */
		if (bpf_skb_load_bytes(skb, ip_len + 12, &doff_byte, 1))
			return 0;
		transport_len = (doff_byte >> 4) * 4;
	} else if (proto == PROTO_UDP) {
		transport_len = sizeof(struct udphdr);
	} else {
		return 0;
	}
	/* Source and destination port lead both transport headers. */
	__be16 ports[2];

	if (bpf_skb_load_bytes(skb, ip_len, ports, sizeof(ports)))
		return 0;
	view->local.port = bpf_ntohs(egress ? ports[0] : ports[1]);
	view->local.proto = proto;
	view->peer_port = bpf_ntohs(egress ? ports[1] : ports[0]);
	return ip_len + transport_len;
}

static __always_inline int account(struct __sk_buff *skb, int egress)
{
	static const struct net_cgroup_stats zero;
	__u64 cgroup_id = bpf_skb_cgroup_id(skb);
	struct net_cgroup_stats *stats;
	struct packet_view view = {};
	__u32 headers;

	stats = bpf_map_lookup_elem(&net_stats, &cgroup_id);
	if (!stats) {
		if (bpf_map_update_elem(&net_stats, &cgroup_id, &zero, BPF_NOEXIST) &&
		    !bpf_map_lookup_elem(&net_stats, &cgroup_id)) {
			count_error(NET_ERROR_MAP_FULL);
			return ALLOW;
		}
		stats = bpf_map_lookup_elem(&net_stats, &cgroup_id);
		if (!stats)
			return ALLOW;
	}
	headers = header_length(skb, egress, &view);
	if (egress) {
		stats->tx_bytes += skb->len;
		stats->tx_packets++;
		if (headers && skb->len >= headers)
			stats->tx_payload_bytes += skb->len - headers;
	} else {
		stats->rx_bytes += skb->len;
		stats->rx_packets++;
		if (headers && skb->len >= headers)
			stats->rx_payload_bytes += skb->len - headers;
	}
	if (!track_flows || !headers)
		return ALLOW;

	/* The endpoint's owner, written only when it changes. */
	__u64 *owner = bpf_map_lookup_elem(&local_endpoints, &view.local);

	if (!owner || *owner != cgroup_id)
		bpf_map_update_elem(&local_endpoints, &view.local, &cgroup_id, BPF_ANY);

	struct net_flow_key key = {.cgroup_id = cgroup_id,
				   .egress = egress,
				   .proto = view.local.proto,
				   .peer_port = view.peer_port};
	static const struct net_flow_stats no_flow;
	struct net_flow_stats *flow;

	__builtin_memcpy(key.peer_addr, view.peer, 16);
	flow = bpf_map_lookup_elem(&net_flows, &key);
	if (!flow) {
		if (bpf_map_update_elem(&net_flows, &key, &no_flow, BPF_NOEXIST) &&
		    !bpf_map_lookup_elem(&net_flows, &key)) {
			count_error(NET_ERROR_FLOW_MAP_FULL);
			return ALLOW;
		}
		flow = bpf_map_lookup_elem(&net_flows, &key);
		if (!flow)
			return ALLOW;
	}
	flow->bytes += skb->len;
	flow->packets++;
	if (skb->len >= headers)
		flow->payload_bytes += skb->len - headers;
	return ALLOW;
}

SEC("cgroup_skb/ingress")
int net_ingress(struct __sk_buff *skb)
{
	return account(skb, 0);
}

SEC("cgroup_skb/egress")
int net_egress(struct __sk_buff *skb)
{
	return account(skb, 1);
}
