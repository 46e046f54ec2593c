/* SPDX-License-Identifier: GPL-2.0 */
/* Kernel/user contract of sched_telemetry.bpf.c: per-cgroup scheduler
 * counters, aggregated in a per-CPU hash keyed by the cgroup2 id. User space
 * sums the CPUs' copies and takes deltas between ticks. */
#ifndef ATOLL_SCHED_TELEMETRY_H
#define ATOLL_SCHED_TELEMETRY_H

/* Run-queue latency histogram: slot i counts waits of [2^i, 2^(i+1)) units
 * (slot 0 also holds waits under one unit); the unit is the tunable
 * histogram_unit_ns (1 us by default). */
#define SCHED_TELEMETRY_HIST_SLOTS 32

/* Default capacity of the per-cgroup map, overridable before load. */
#define SCHED_TELEMETRY_DEFAULT_CGROUPS 10240

struct sched_cgroup_stats {
	__u64 oncpu_ns;		    /* time the cgroup's tasks ran, at switch-out */
	__u64 switches;		    /* times one of its tasks was switched out */
	__u64 runq_wait_ns;	    /* total wakeup/preemption-to-run wait */
	__u64 runq_waits;	    /* number of waits measured */
	__u64 cross_island_wait_ns; /* wait while a task of another island ran */
	__u64 runq_hist[SCHED_TELEMETRY_HIST_SLOTS];
};

/* Indexes of the per-CPU error counters (map sched_errors). */
enum sched_telemetry_error {
	SCHED_ERROR_MAP_FULL = 0,     /* a cgroup could not get a map entry */
	SCHED_ERROR_TASK_STORAGE = 1, /* no per-task storage for a task */
	SCHED_ERROR_COUNT = 2,
};

#endif /* ATOLL_SCHED_TELEMETRY_H */
