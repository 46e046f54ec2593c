// SPDX-License-Identifier: GPL-2.0
/* Per-cgroup scheduler telemetry: on-CPU time, context switches and
 * run-queue latency (wakeup or preemption to run), aggregated in the kernel
 * in a per-CPU hash keyed by cgroup2 id, so there is no per-event work in
 * user space. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "core_fixes.bpf.h"
#include "sched_telemetry.h"

char LICENSE[] SEC("license") = "GPL";

#define TASK_RUNNING 0

/* Tunables, set by the loader between open and load. */
const volatile __u64 histogram_unit_ns = 1000;
/* When set, waits are split by the island of the task that ran before. */
const volatile __u8 track_islands = 0;

struct task_times {
	__u64 oncpu_since;
	__u64 enqueued_at;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_times);
} task_times SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, SCHED_TELEMETRY_DEFAULT_CGROUPS);
	__type(key, __u64);
	__type(value, struct sched_cgroup_stats);
} cgroup_stats SEC(".maps");

/* cgroup id -> island number, written by user space; absent = no island. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SCHED_TELEMETRY_DEFAULT_CGROUPS);
	__type(key, __u64);
	__type(value, __u32);
} cgroup_island SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SCHED_ERROR_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} sched_errors SEC(".maps");

static __always_inline void count_error(__u32 which)
{
	__u64 *counter = bpf_map_lookup_elem(&sched_errors, &which);

	if (counter)
		*counter += 1;
}

static __always_inline struct sched_cgroup_stats *stats_for(__u64 cgroup_id)
{
	static const struct sched_cgroup_stats zero;
	struct sched_cgroup_stats *stats;

	stats = bpf_map_lookup_elem(&cgroup_stats, &cgroup_id);
	if (stats)
		return stats;
	if (bpf_map_update_elem(&cgroup_stats, &cgroup_id, &zero, BPF_NOEXIST) &&
	    !bpf_map_lookup_elem(&cgroup_stats, &cgroup_id)) {
		count_error(SCHED_ERROR_MAP_FULL);
		return 0;
	}
	return bpf_map_lookup_elem(&cgroup_stats, &cgroup_id);
}

static __always_inline __u32 log2_slot(__u64 value)
{
	__u32 slot = 0;

	/* Bounded loop the verifier accepts on every supported kernel. */
	for (int i = 0; i < SCHED_TELEMETRY_HIST_SLOTS - 1; i++) {
		if (value < 2)
			break;
		value >>= 1;
		slot++;
	}
	return slot;
}

static __always_inline void mark_enqueued(struct task_struct *task, __u64 now)
{
	struct task_times *times;

	times = bpf_task_storage_get(&task_times, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!times) {
		count_error(SCHED_ERROR_TASK_STORAGE);
		return;
	}
	times->enqueued_at = now;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(sched_wakeup, struct task_struct *task)
{
	mark_enqueued(task, bpf_ktime_get_ns());
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(sched_wakeup_new, struct task_struct *task)
{
	mark_enqueued(task, bpf_ktime_get_ns());
	return 0;
}

static __always_inline __u32 island_of(__u64 cgroup_id)
{
	__u32 *island = bpf_map_lookup_elem(&cgroup_island, &cgroup_id);

	return island ? *island : 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u64 now = bpf_ktime_get_ns();
	__u64 prev_cgroup = bpf_get_current_cgroup_id();
	struct sched_cgroup_stats *stats;
	struct task_times *times;

	/* The outgoing task: charge its slice; if it stays runnable
	 * (preempted), its run-queue wait starts now. The idle task (pid 0)
	 * is not a workload. */
	if (prev->pid) {
		times = bpf_task_storage_get(&task_times, prev, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (times) {
			stats = stats_for(prev_cgroup);
			if (stats) {
				if (times->oncpu_since)
					stats->oncpu_ns += now - times->oncpu_since;
				stats->switches++;
			}
			times->oncpu_since = 0;
			times->enqueued_at = atoll_task_state(prev) == TASK_RUNNING ? now : 0;
		} else {
			count_error(SCHED_ERROR_TASK_STORAGE);
		}
	}

	if (!next->pid)
		return 0;
	times = bpf_task_storage_get(&task_times, next, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!times) {
		count_error(SCHED_ERROR_TASK_STORAGE);
		return 0;
	}
	times->oncpu_since = now;
	if (!times->enqueued_at)
		return 0;
	__u64 wait = now - times->enqueued_at;
	__u64 next_cgroup = atoll_task_cgroup_id(next);

	times->enqueued_at = 0;
	stats = stats_for(next_cgroup);
	if (!stats)
		return 0;
	stats->runq_wait_ns += wait;
	stats->runq_waits++;
	stats->runq_hist[log2_slot(wait / histogram_unit_ns)]++;
	if (track_islands && prev->pid) {
		__u32 next_island = island_of(next_cgroup);
		__u32 prev_island = island_of(prev_cgroup);

		if (next_island && prev_island && next_island != prev_island)
			stats->cross_island_wait_ns += wait;
	}
	return 0;
}

/* Baseline for the per-event cost benchmark: the same attach point doing
 * nothing. Not auto-loaded with the others. */
SEC("tp_btf/sched_switch")
int BPF_PROG(empty_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return 0;
}
