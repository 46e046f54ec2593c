/* SPDX-License-Identifier: GPL-2.0 */
/* Kernel/user contract of block_telemetry.bpf.c: per-cgroup block I/O bytes,
 * operations and completion latency. Bytes are charged when submitted, to the
 * cgroup of the submitting task: a request's first bio when it starts
 * (block_io_start runs in the submitter's context), each bio merged into it
 * later when it merges. Direct I/O is so attributed exactly, including
 * requests that fail; page-cache writeback is done by kernel threads and
 * lands in their cgroup. Operations and latency are counted at a request's
 * completion, charged to the cgroup that started it; a completion that comes
 * while the completion program already runs on that CPU is not seen (the
 * kernel does not nest a tracing program), so they can fall short of the
 * requests by a few in many thousands. */
#ifndef ATOLL_BLOCK_TELEMETRY_H
#define ATOLL_BLOCK_TELEMETRY_H

#define BLOCK_TELEMETRY_HIST_SLOTS 32
#define BLOCK_TELEMETRY_DEFAULT_CGROUPS 10240
#define BLOCK_TELEMETRY_MAX_INFLIGHT 16384

struct block_cgroup_stats {
	__u64 read_bytes; /* submitted */
	__u64 write_bytes;
	__u64 read_ops;
	__u64 write_ops;
	__u64 latency_ns;				/* sum over completed reads and writes */
	__u64 latency_hist[BLOCK_TELEMETRY_HIST_SLOTS]; /* log2 of microseconds */
};

enum block_telemetry_error {
	BLOCK_ERROR_MAP_FULL = 0,      /* cgroup map full */
	BLOCK_ERROR_INFLIGHT_FULL = 1, /* request table full: request not counted */
	BLOCK_ERROR_COUNT = 2,
};

#endif /* ATOLL_BLOCK_TELEMETRY_H */
