// SPDX-License-Identifier: GPL-2.0
/* Per-cgroup block I/O: bytes submitted, and operations and latency from
 * request start to completion, aggregated in a per-CPU hash keyed by cgroup2
 * id. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "block_telemetry.h"

char LICENSE[] SEC("license") = "GPL";

#define REQ_OP_BITS 8
#define REQ_OP_MASK ((1 << REQ_OP_BITS) - 1)
#define OP_READ 0
#define OP_WRITE 1

/* Tunable: latency histogram unit. */
const volatile __u64 histogram_unit_ns = 1000;

struct inflight_request {
	__u64 cgroup_id;
	__u64 started_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BLOCK_TELEMETRY_MAX_INFLIGHT);
	__type(key, __u64); /* struct request address */
	__type(value, struct inflight_request);
} inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, BLOCK_TELEMETRY_DEFAULT_CGROUPS);
	__type(key, __u64);
	__type(value, struct block_cgroup_stats);
} block_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BLOCK_ERROR_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} block_errors SEC(".maps");

static __always_inline void count_error(__u32 which)
{
	__u64 *counter = bpf_map_lookup_elem(&block_errors, &which);

	if (counter)
		*counter += 1;
}

static __always_inline __u32 log2_slot(__u64 value)
{
	__u32 slot = 0;

	for (int i = 0; i < BLOCK_TELEMETRY_HIST_SLOTS - 1; i++) {
		if (value < 2)
			break;
		value >>= 1;
		slot++;
	}
	return slot;
}

/* This CPU's stats of `cgroup_id`, created on first use. */
static __always_inline struct block_cgroup_stats *stats_of(__u64 cgroup_id)
{
	static const struct block_cgroup_stats zero;
	struct block_cgroup_stats *stats = bpf_map_lookup_elem(&block_stats, &cgroup_id);

	if (stats)
		return stats;
	if (bpf_map_update_elem(&block_stats, &cgroup_id, &zero, BPF_NOEXIST) &&
	    !bpf_map_lookup_elem(&block_stats, &cgroup_id)) {
		count_error(BLOCK_ERROR_MAP_FULL);
		return 0;
	}
	return bpf_map_lookup_elem(&block_stats, &cgroup_id);
}

/* Bytes are counted where they are submitted, in the submitter's context:
 * a request's first bio when the request starts, each bio merged into a
 * request later when it merges. A tracing program is not run again on a CPU
 * where it is already running, so a completion that comes (in a softirq)
 * while the completion program runs for another request (say one completed
 * in process context) is never seen; submissions do not nest that way. */
static __always_inline void count_submitted(__u32 op, __u64 bytes)
{
	struct block_cgroup_stats *stats;

	if (op != OP_READ && op != OP_WRITE)
		return;
	stats = stats_of(bpf_get_current_cgroup_id());
	if (!stats)
		return;
	if (op == OP_READ)
		stats->read_bytes += bytes;
	else
		stats->write_bytes += bytes;
}

SEC("tp_btf/block_io_start")
int BPF_PROG(block_io_start, struct request *rq)
{
	__u64 key = (__u64)rq;
	struct inflight_request value = {
	    .cgroup_id = bpf_get_current_cgroup_id(),
	    .started_ns = bpf_ktime_get_ns(),
	};

	count_submitted(BPF_CORE_READ(rq, cmd_flags) & REQ_OP_MASK, BPF_CORE_READ(rq, __data_len));
	if (bpf_map_update_elem(&inflight, &key, &value, BPF_ANY))
		count_error(BLOCK_ERROR_INFLIGHT_FULL);
	return 0;
}

SEC("tp_btf/block_bio_backmerge")
int BPF_PROG(block_bio_backmerge, struct bio *bio)
{
	count_submitted(BPF_CORE_READ(bio, bi_opf) & REQ_OP_MASK,
			BPF_CORE_READ(bio, bi_iter.bi_size));
	return 0;
}

SEC("tp_btf/block_bio_frontmerge")
int BPF_PROG(block_bio_frontmerge, struct bio *bio)
{
	count_submitted(BPF_CORE_READ(bio, bi_opf) & REQ_OP_MASK,
			BPF_CORE_READ(bio, bi_iter.bi_size));
	return 0;
}

/* Operations and latency: at the request's last completion. */
SEC("tp_btf/block_rq_complete")
int BPF_PROG(block_rq_complete, struct request *rq, blk_status_t error, unsigned int nr_bytes)
{
	__u64 key = (__u64)rq;
	struct inflight_request *req = bpf_map_lookup_elem(&inflight, &key);
	struct block_cgroup_stats *stats;

	if (!req)
		return 0; /* started before we attached, or not accounted */
	/* Partial completions come first; the last one covers what is left. */
	if (nr_bytes < BPF_CORE_READ(rq, __data_len))
		return 0;
	__u64 cgroup_id = req->cgroup_id;
	__u64 latency = bpf_ktime_get_ns() - req->started_ns;
	__u32 op = BPF_CORE_READ(rq, cmd_flags) & REQ_OP_MASK;

	bpf_map_delete_elem(&inflight, &key);
	if (op != OP_READ && op != OP_WRITE)
		return 0;
	stats = stats_of(cgroup_id);
	if (!stats)
		return 0;
	if (op == OP_READ)
		stats->read_ops++;
	else
		stats->write_ops++;
	stats->latency_ns += latency;
	stats->latency_hist[log2_slot(latency / histogram_unit_ns)]++;
	return 0;
}
