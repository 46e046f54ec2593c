/* SPDX-License-Identifier: GPL-2.0 */
/* Kernel/user contract of net_telemetry.bpf.c: per-cgroup traffic counters
 * and the cgroup-to-peer traffic matrix.
 *
 * Bytes are skb->len as a cgroup_skb program sees it: the IP header, the
 * transport header and the payload (no link-layer header), on egress before
 * GSO segmentation, so one large TCP send may be one packet here. */
#ifndef ATOLL_NET_TELEMETRY_H
#define ATOLL_NET_TELEMETRY_H

#define NET_TELEMETRY_DEFAULT_CGROUPS 10240
#define NET_TELEMETRY_DEFAULT_FLOWS 65536

struct net_cgroup_stats {
	__u64 rx_bytes;
	__u64 rx_packets;
	__u64 tx_bytes;
	__u64 tx_packets;
	/* Transport payload only (TCP/UDP over IPv4/IPv6), for checks that
	 * need the application's byte count. */
	__u64 rx_payload_bytes;
	__u64 tx_payload_bytes;
};

/* One direction of traffic between a monitored cgroup and a peer endpoint
 * (address, port, protocol): the planner's dependency map. Addresses are
 * IPv6 or IPv4-mapped IPv6; ports in host order. */
struct net_flow_key {
	__u64 cgroup_id;
	__u8 peer_addr[16];
	__u8 egress; /* 1: cgroup sent to peer, 0: received from peer */
	__u8 proto;  /* IPPROTO_TCP or IPPROTO_UDP */
	__u16 peer_port;
	__u8 pad[4];
};

struct net_flow_stats {
	__u64 bytes; /* skb->len: IP + transport headers + payload */
	__u64 packets;
	__u64 payload_bytes; /* transport payload only */
};

/* A local socket endpoint seen in a packet of a monitored cgroup: the source
 * of what it sent, the destination of what it received. User space joins
 * flows whose peer is such an endpoint to the cgroup owning it. */
struct net_endpoint {
	__u8 addr[16];
	__u16 port;
	__u8 proto;
	__u8 pad[5];
};

enum net_telemetry_error {
	NET_ERROR_MAP_FULL = 0,
	NET_ERROR_FLOW_MAP_FULL = 1,
	NET_ERROR_COUNT = 2,
};

#endif /* ATOLL_NET_TELEMETRY_H */
