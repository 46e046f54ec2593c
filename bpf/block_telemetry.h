/* SPDX-License-Identifier: GPL-2.0 */
/* Kernel/user contract of block_telemetry.bpf.c: per-cgroup block I/O bytes,
 * operations and completion latency. A request is charged to the cgroup of
 * the task that started it (block_io_start runs in the submitter's context),
 * so direct I/O is attributed exactly; page-cache writeback is done by kernel
 * threads and lands in their cgroup. */
#ifndef ATOLL_BLOCK_TELEMETRY_H
#define ATOLL_BLOCK_TELEMETRY_H

#define BLOCK_TELEMETRY_HIST_SLOTS 32
#define BLOCK_TELEMETRY_DEFAULT_CGROUPS 10240
#define BLOCK_TELEMETRY_MAX_INFLIGHT 16384

struct block_cgroup_stats {
	__u64 read_bytes;
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
