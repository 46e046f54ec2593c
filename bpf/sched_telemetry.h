/* SPDX-License-Identifier: GPL-2.0 */
/* Kernel/user contract of sched_telemetry.bpf.c: per-cgroup scheduler
 * counters for the cgroups user space asks to monitor, aggregated in an
 * array indexed by a dense slot number whose row holds one copy of struct
 * sched_cgroup_stats per possible CPU (laid out like a per-CPU map's value as
 * user space reads it). User space owns the table of
 * monitored cgroup ids (an open-addressed hash table in the program's .bss,
 * memory-mapped), sums the CPUs' copies of each slot and takes deltas between
 * ticks. Tasks of unmonitored cgroups cost a few loads and no map access. */
#ifndef ATOLL_SCHED_TELEMETRY_H
#define ATOLL_SCHED_TELEMETRY_H

/* Run-queue latency histogram: slot i counts waits of [2^i, 2^(i+1)) units
 * (slot 0 also holds waits under one unit); the unit is the tunable
 * histogram_unit_ns (1 us by default). */
#define SCHED_TELEMETRY_HIST_SLOTS 32

/* Default capacity of the per-cgroup map, overridable before load up to
 * SCHED_MONITOR_MAX_CGROUPS. */
#define SCHED_TELEMETRY_DEFAULT_CGROUPS 10240

/* The monitored-cgroup table: a power of two at least three times the
 * largest capacity, so an id is found (or known absent) within a few probes. */
#define SCHED_MONITOR_TABLE_BITS 15
#define SCHED_MONITOR_TABLE_SIZE (1u << SCHED_MONITOR_TABLE_BITS)
#define SCHED_MONITOR_MAX_CGROUPS (SCHED_MONITOR_TABLE_SIZE / 3)
/* An id lives within this many entries of its home; user space refuses
 * (and counts) an insert that would need more. */
#define SCHED_MONITOR_MAX_PROBES 8
/* cgroup_id of a free entry, and of a removed one that probes pass over. */
#define SCHED_MONITOR_EMPTY 0ull
#define SCHED_MONITOR_REMOVED (~0ull)
/* Islands are numbered 1..SCHED_MAX_ISLANDS-1; 0 means none. */
#define SCHED_MAX_ISLANDS 64

struct sched_monitor_entry {
	__u64 cgroup_id; /* written last on insert, so slot/island are valid once seen */
	__u32 slot;	 /* index into cgroup_stats */
	__u32 island;	 /* 0 = not in an island */
};

/* Fibonacci hashing of the cgroup id onto the table (ids are inode numbers,
 * often consecutive). Shared by both sides so they agree on homes. */
static inline __u32 sched_monitor_home(__u64 cgroup_id)
{
	return (__u32)((cgroup_id * 0x9E3779B97F4A7C15ull) >> (64 - SCHED_MONITOR_TABLE_BITS));
}

struct sched_cgroup_stats {
	/* The cgroup owning the slot, written by user space into every CPU's
	 * copy when the slot is given out and cleared when it is taken back:
	 * lets a program trust a slot number it cached. Not a counter. */
	__u64 owner_cgroup_id;
	__u64 oncpu_ns;		    /* time the cgroup's tasks ran, at switch-out */
	__u64 switches;		    /* times one of its tasks was switched out */
	__u64 runq_wait_ns;	    /* total wakeup/preemption-to-run wait */
	__u64 runq_waits;	    /* number of waits measured */
	__u64 cross_island_wait_ns; /* wait while a task of another island ran */
	__u64 page_faults;	    /* user page faults (exceptions:page_fault_user) */
	__u64 runq_hist[SCHED_TELEMETRY_HIST_SLOTS];
};

/* What a task's waits were last charged up to (sched_info of its previous
 * switch-out). */
struct sched_task_baseline {
	__u64 cgroup_id;      /* the cgroup the *_seen values were taken in */
	__u64 run_delay_seen; /* the task's run_delay already charged */
	__u64 arrivals_seen;  /* its sched_info.pcount at that time */
};

/* Pid-indexed baselines in the program's .bss (the default pid_max, 32768,
 * and up to twice that fit; tasks with larger pids use task local storage). */
#define SCHED_TASK_SLOTS (1u << 16)

struct sched_task_slot {
	__u32 pid;
	__u32 stats_slot; /* cgroup_stats slot of seen.cgroup_id when last seen */
	__u64 start_time; /* with pid, tells a reused pid from its predecessor */
	struct sched_task_baseline seen;
};

/* Indexes of the per-CPU error counters (map sched_errors). */
enum sched_telemetry_error {
	SCHED_ERROR_MAP_FULL = 0,     /* kept for the layout; the table is filled in user space */
	SCHED_ERROR_TASK_STORAGE = 1, /* no per-task storage for a task */
	SCHED_ERROR_COUNT = 2,
};

#endif /* ATOLL_SCHED_TELEMETRY_H */
