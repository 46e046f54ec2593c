// SPDX-License-Identifier: GPL-2.0
/* Per-cgroup scheduler telemetry: on-CPU time, context switches, run-queue
 * latency, the share of that wait spent behind another island's tasks, and
 * user page faults, for the cgroups user space monitors. Aggregated in the
 * kernel in per-CPU copies, so there is no per-event work in user space.
 *
 * The hot path is a context switch of tasks nobody monitors: all accounting
 * is done for the outgoing task only, so it costs the outgoing task's cgroup
 * loads and a NULL test of that cgroup's local storage (or, on kernels before
 * cgroup local storage, its cgroup id and one bit test in a page of .bss) and
 * returns. Monitored tasks are measured with the scheduler's own sched_info
 * accounting (the numbers /proc/PID/schedstat reports) when they leave a CPU:
 * the slice since last_arrival against the run queue's clock, and the growth
 * of run_delay and pcount (the waits before their runs). No wakeup hook is
 * needed and the incoming task is not looked at, except for the cross-island
 * wait, which alone loads the wakeup hooks. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "core_fixes.bpf.h"
#include "sched_telemetry.h"

char LICENSE[] SEC("license") = "GPL";

#define TASK_RUNNING 0

/* Baseline for the per-event cost benchmark: the same attach point doing
 * nothing. Not auto-loaded with the others. Defined first so that it is
 * attached first: the first program on a tracepoint pays for the shared
 * page of JIT code being out of the TLB, which the benchmark moves between
 * the two programs to compare them in the same position. */
SEC("tp_btf/sched_switch")
int BPF_PROG(empty_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return 0;
}

/* Tunables, set by the loader between open and load. */
const volatile __u64 histogram_unit_ns = 1000;
/* When set, each CPU keeps an island clock and waits behind other islands'
 * tasks are measured exactly (sched_migrate_task must be attached too). */
const volatile __u8 track_islands = 0;

/* Set by the loader where the kernel has cgroup local storage (Linux 6.2):
 * the monitored cgroups are then marked by an entry in monitored_cgroups, so
 * a task of an unmonitored cgroup is told apart without hashing its id or
 * touching the table. */
const volatile __u8 use_cgroup_storage = 0;

/* Cgroup local storage marking the monitored cgroups (user space creates and
 * deletes the entries, keyed by a cgroup descriptor; the value is not read
 * by the programs). On kernels without it
 * the loader turns this into an unused one-entry array and the table below
 * serves. */
struct {
	__uint(type, BPF_MAP_TYPE_CGRP_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sched_monitor_entry);
} monitored_cgroups SEC(".maps");

/* Written by user space through the memory-mapped .bss. Bit h of
 * monitored_homes is set while some monitored id has home h: one page that
 * stays cached answers "not monitored" for nearly every task, and the
 * 512 KiB table is only probed on a hit. */
__u64 monitored_homes[SCHED_MONITOR_TABLE_SIZE / 64];
struct sched_monitor_entry monitored[SCHED_MONITOR_TABLE_SIZE];

struct task_times {
	struct sched_task_baseline seen;
	/* Cross-island accounting of the current wait (track_islands). */
	__u64 other_island_at_enqueue; /* island clock of island_cpu at the stamp */
	__u64 cross_island_pending;    /* accrued on CPUs the task left */
	__u32 island_cpu;
	__u32 island; /* island of a wait in progress, 0 when none */
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_times);
} task_times SEC(".maps");

/* The switch-out baselines of tasks whose pid is below the table size when
 * islands are not tracked, indexed by pid: a pid names one live task at a
 * time and start_time tells a reused pid from its predecessor, so there are
 * no collisions, and the entry is one load away instead of a
 * bpf_task_storage_get() call (which costs more than the rest of the
 * monitored path here). Only a task's own switch-out writes its entry. */
struct sched_task_slot task_slots[SCHED_TASK_SLOTS];

/* One row per slot holding one copy of the counters per possible CPU (the
 * loader sets the value size to stats_cpus copies), instead of a per-CPU
 * array: a per-CPU array reaches its element through a table of pointers in
 * its own vmalloc'd pages, one more page missing from the TLB per event here,
 * where a plain array's element is at a fixed offset from the map. A CPU
 * only writes its own copy; the copies' hot counters are at their start and
 * the rarely written tail of the histogram separates them, so neighbouring
 * CPUs do not contend for cache lines. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SCHED_TELEMETRY_DEFAULT_CGROUPS);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(struct sched_cgroup_stats));
} cgroup_stats SEC(".maps");

/* Copies per row of cgroup_stats: the number of possible CPUs (loader). */
const volatile __u32 stats_cpus = 1;

/* Per CPU: how long it ran tasks of each island, and what it runs now. */
struct island_clock {
	__u64 islanded_ns;
	__u64 island_ns[SCHED_MAX_ISLANDS];
	__u64 running_since;
	__u32 running_island;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct island_clock);
} island_clocks SEC(".maps");

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

/* The monitored-table entry of a cgroup, or NULL: probing stops at the first
 * free entry and passes over removed ones. */
static __always_inline struct sched_monitor_entry *monitored_entry_probe(__u64 cgroup_id)
{
	__u32 home = sched_monitor_home(cgroup_id);

	for (__u32 i = 0; i < SCHED_MONITOR_MAX_PROBES; i++) {
		struct sched_monitor_entry *entry =
		    &monitored[(home + i) & (SCHED_MONITOR_TABLE_SIZE - 1)];
		__u64 id = *(volatile __u64 *)&entry->cgroup_id;

		if (id == cgroup_id)
			return entry;
		if (id == SCHED_MONITOR_EMPTY)
			return 0;
	}
	return 0;
}

/* Whether some monitored id has the home of this one (one bit in a page). */
static __always_inline bool home_marked(__u64 cgroup_id)
{
	__u32 home = sched_monitor_home(cgroup_id);
	__u64 homes =
	    *(volatile __u64 *)&monitored_homes[(home / 64) & (SCHED_MONITOR_TABLE_SIZE / 64 - 1)];

	return homes & (1ull << (home % 64));
}

/* Whether a task's cgroup may be monitored, and its id. With cgroup local
 * storage an unmonitored task costs three loads of its own cgroup chain: a
 * cgroup without any local storage has a NULL bpf_cgrp_storage, so nothing
 * outside the kernel's directly mapped memory is touched (the .bss bitmap
 * alone costs a TLB miss under nested paging, more than the rest of the
 * program). The storage is only a mark (calling bpf_cgrp_storage_get() for
 * the entry costs more than the table); the entry is the table's. */
static __always_inline bool task_cgroup_marked(struct task_struct *task, __u64 *cgroup_id)
{
	if (use_cgroup_storage) {
		struct cgroup *cgroup = task->cgroups->dfl_cgrp;

		if (!bpf_core_field_exists(cgroup->bpf_cgrp_storage) || !cgroup->bpf_cgrp_storage)
			return false;
		*cgroup_id = cgroup->kn->id;
		return true;
	}
	*cgroup_id = atoll_btf_task_cgroup_id(task);
	return home_marked(*cgroup_id);
}

/* The monitored entry of a task's cgroup, or NULL. */
static __always_inline struct sched_monitor_entry *task_entry(struct task_struct *task)
{
	__u64 cgroup_id;

	if (!task_cgroup_marked(task, &cgroup_id))
		return 0;
	return monitored_entry_probe(cgroup_id);
}

/* This CPU's copy of the counters in a slot, or NULL. */
static __always_inline struct sched_cgroup_stats *stats_at(__u32 slot)
{
	struct sched_cgroup_stats *row = bpf_map_lookup_elem(&cgroup_stats, &slot);
	__u32 cpu = bpf_get_smp_processor_id();

	if (!row || cpu >= stats_cpus)
		return 0;
	return row + cpu;
}

static __always_inline struct sched_cgroup_stats *stats_of(struct sched_monitor_entry *entry)
{
	return stats_at(entry->slot);
}

static __always_inline __u32 log2_slot(__u64 value)
{
	__u32 slot = 0, shift;

	/* Branch-free integer log2 in six steps. */
	shift = (value > 0xFFFFFFFFull) << 5;
	value >>= shift;
	slot |= shift;
	shift = (value > 0xFFFF) << 4;
	value >>= shift;
	slot |= shift;
	shift = (value > 0xFF) << 3;
	value >>= shift;
	slot |= shift;
	shift = (value > 0xF) << 2;
	value >>= shift;
	slot |= shift;
	shift = (value > 0x3) << 1;
	value >>= shift;
	slot |= shift;
	slot |= (value >> 1);
	return slot < SCHED_TELEMETRY_HIST_SLOTS ? slot : SCHED_TELEMETRY_HIST_SLOTS - 1;
}

/* Time the clock's CPU has spent running tasks of islands other than
 * `island`, up to now. */
static __always_inline __u64 other_island_ns(struct island_clock *clock, __u32 island, __u64 now)
{
	__u64 other = clock->islanded_ns - clock->island_ns[island & (SCHED_MAX_ISLANDS - 1)];
	__u32 running = clock->running_island;

	if (running && running != island && now > clock->running_since)
		other += now - clock->running_since;
	return other;
}

/* Starts a run-queue wait on `cpu` for a task of `island`: the island clock
 * of that CPU now. */
static __always_inline void stamp_island_wait(struct task_times *times, __u32 island, __u32 cpu,
					      __u64 now, struct island_clock *clock)
{
	if (!clock) {
		__u32 zero = 0;

		clock = bpf_map_lookup_percpu_elem(&island_clocks, &zero, cpu);
		if (!clock)
			return;
	}
	times->island = island;
	times->island_cpu = cpu;
	times->cross_island_pending = 0;
	times->other_island_at_enqueue = other_island_ns(clock, island, now);
}

static __always_inline void mark_enqueued(struct task_struct *task)
{
	struct sched_monitor_entry *entry = task_entry(task);
	struct task_times *times;

	if (!entry || !entry->island)
		return;
	times = bpf_task_storage_get(&task_times, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!times) {
		count_error(SCHED_ERROR_TASK_STORAGE);
		return;
	}
	stamp_island_wait(times, entry->island, atoll_task_cpu(task), bpf_ktime_get_ns(), 0);
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(sched_wakeup, struct task_struct *task)
{
	mark_enqueued(task);
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(sched_wakeup_new, struct task_struct *task)
{
	mark_enqueued(task);
	return 0;
}

/* A waiting task moved to another CPU's run queue: what it waited behind
 * other islands so far stays with it, and the new CPU's clock takes over. */
SEC("tp_btf/sched_migrate_task")
int BPF_PROG(sched_migrate_task, struct task_struct *task, int dest_cpu)
{
	struct island_clock *from, *to;
	struct task_times *times;
	__u32 zero = 0;
	__u64 now;

	times = bpf_task_storage_get(&task_times, task, 0, 0);
	if (!times || !times->island)
		return 0;
	now = bpf_ktime_get_ns();
	from = bpf_map_lookup_percpu_elem(&island_clocks, &zero, times->island_cpu);
	to = bpf_map_lookup_percpu_elem(&island_clocks, &zero, dest_cpu);
	if (!from || !to)
		return 0;
	__u64 other_now = other_island_ns(from, times->island, now);

	if (other_now > times->other_island_at_enqueue)
		times->cross_island_pending += other_now - times->other_island_at_enqueue;
	times->island_cpu = dest_cpu;
	times->other_island_at_enqueue = other_island_ns(to, times->island, now);
	return 0;
}

/* Advances this CPU's island clock to `now` and starts `island` running. */
static __always_inline struct island_clock *advance_island_clock(__u32 island, __u64 now)
{
	__u32 zero = 0;
	struct island_clock *clock = bpf_map_lookup_elem(&island_clocks, &zero);

	if (!clock)
		return 0;
	__u32 running = clock->running_island;

	if (running && now > clock->running_since) {
		__u64 ran = now - clock->running_since;

		clock->islanded_ns += ran;
		clock->island_ns[running & (SCHED_MAX_ISLANDS - 1)] += ran;
	}
	clock->running_island = island;
	clock->running_since = now;
	return clock;
}

/* The pid-indexed slot of a task (islands not tracked, pid within the
 * table), or NULL. *fresh is set when the slot was not this task's. */
static __always_inline struct sched_task_slot *task_slot(struct task_struct *task, bool *fresh)
{
	__u32 pid = task->pid;

	if (track_islands || pid >= SCHED_TASK_SLOTS)
		return 0;
	struct sched_task_slot *slot = &task_slots[pid];
	__u64 start_time = task->start_time;

	if (slot->pid != pid || slot->start_time != start_time) {
		slot->pid = pid;
		slot->start_time = start_time;
		*fresh = true;
	}
	return slot;
}

/* Charges the outgoing task of a monitored cgroup: the slice it ran (since it
 * arrived) and the run-queue waits sched_info accounted since the last time it
 * left a CPU. A task's every run ends with a switch-out, so each wait is seen
 * once, one run late, and the incoming task is never touched.
 *
 * `entry` is the cgroup's monitored entry, or NULL when the caller only
 * knows the cgroup is marked: then the stats slot the task's pid slot cached
 * at its previous switch-out is used if that slot still belongs to the
 * cgroup (one load of the stats the path writes anyway), and the table is
 * probed only otherwise. */
static __always_inline void account_switch_out(struct task_struct *prev, __u64 cgroup_id,
					       struct sched_monitor_entry *entry, __u64 rq_clock)
{
	struct sched_cgroup_stats *stats = 0;
	struct sched_task_baseline *seen;
	struct sched_task_slot *slot;
	bool fresh = false;

	slot = task_slot(prev, &fresh);
	if (!entry && slot && !fresh && slot->seen.cgroup_id == cgroup_id) {
		stats = stats_at(slot->stats_slot);
		if (stats && stats->owner_cgroup_id != cgroup_id)
			stats = 0;
	}
	if (!stats) {
		if (!entry)
			entry = monitored_entry_probe(cgroup_id);
		if (!entry)
			return;
		stats = stats_of(entry);
		if (!stats)
			return;
		if (slot)
			slot->stats_slot = entry->slot;
	}
	__u64 arrived = prev->sched_info.last_arrival;

	if (arrived && rq_clock > arrived)
		stats->oncpu_ns += rq_clock - arrived;
	stats->switches++;

	if (slot) {
		seen = &slot->seen;
	} else {
		struct task_times *times =
		    bpf_task_storage_get(&task_times, prev, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);

		if (!times) {
			count_error(SCHED_ERROR_TASK_STORAGE);
			return;
		}
		seen = &times->seen;
	}
	/* run_delay already holds the wait before this run (sched_info adds it
	 * at arrival, waits cut short by migration included); pcount counts
	 * arrivals. */
	__u64 run_delay = prev->sched_info.run_delay;
	__u64 arrivals = prev->sched_info.pcount;

	if (fresh || seen->cgroup_id != cgroup_id || run_delay < seen->run_delay_seen ||
	    arrivals < seen->arrivals_seen) {
		/* First time seen in this cgroup: the baseline, not a wait. */
		seen->cgroup_id = cgroup_id;
		seen->run_delay_seen = run_delay;
		seen->arrivals_seen = arrivals;
		if (!slot)
			container_of(seen, struct task_times, seen)->island = 0;
		return;
	}
	__u64 wait = run_delay - seen->run_delay_seen;
	__u64 waits = arrivals - seen->arrivals_seen;

	seen->run_delay_seen = run_delay;
	seen->arrivals_seen = arrivals;
	stats->runq_wait_ns += wait;
	if (!waits)
		return;
	stats->runq_waits += waits;
	/* One wait per run is the rule; should several runs fall between two
	 * switch-outs seen, each is charged their mean. */
	__u64 per_wait = waits == 1 ? wait : wait / waits;

	stats->runq_hist[log2_slot(per_wait / histogram_unit_ns)] += waits;
}

/* The incoming task ends a wait: the part of it spent while another island's
 * tasks held the CPU (track_islands only). The wait itself is charged at the
 * task's next switch-out. */
static __always_inline void account_cross_island(struct task_struct *next,
						 struct sched_monitor_entry *entry, __u64 rq_clock,
						 __u64 now, struct island_clock *clock)
{
	struct task_times *times = bpf_task_storage_get(&task_times, next, 0, 0);
	struct sched_cgroup_stats *stats;

	if (!times || !times->island || times->seen.cgroup_id != entry->cgroup_id)
		return;
	/* The wait ending now: what sched_info charged since the last
	 * switch-out (migrations) plus what it is about to charge. */
	__u64 queued = next->sched_info.last_queued;
	__u64 run_delay = next->sched_info.run_delay;

	if (queued && rq_clock > queued)
		run_delay += rq_clock - queued;
	__u64 wait =
	    run_delay > times->seen.run_delay_seen ? run_delay - times->seen.run_delay_seen : 0;
	__u64 cross = times->cross_island_pending;

	if (times->island_cpu == bpf_get_smp_processor_id()) {
		__u64 other_now = other_island_ns(clock, times->island, now);

		if (other_now > times->other_island_at_enqueue)
			cross += other_now - times->other_island_at_enqueue;
	}
	times->island = 0;
	stats = stats_of(entry);
	if (stats)
		stats->cross_island_wait_ns += cross < wait ? cross : wait;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	struct sched_monitor_entry *prev_entry = 0, *next_entry = 0;
	struct island_clock *clock = 0;
	struct task_times *times;
	__u64 now = 0;

	if (!track_islands) {
		__u64 cgroup_id;

		/* The common case: one cgroup chain and one test. The idle
		 * task (pid 0) is not a workload. */
		if (!prev->pid || !task_cgroup_marked(prev, &cgroup_id))
			return 0;
		/* __schedule() updated this clock before the tracepoint; the
		 * scheduler's sched_info accounting right after it uses the
		 * same value, so slices here are the ones schedstat reports. */
		account_switch_out(prev, cgroup_id, 0, atoll_rq_clock_of(prev));
		return 0;
	}

	/* The idle task (pid 0) is not a workload. */
	if (prev->pid)
		prev_entry = task_entry(prev);

	/* Island clocks need to know which island runs next. */
	if (next->pid)
		next_entry = task_entry(next);
	now = bpf_ktime_get_ns();
	clock = advance_island_clock(next_entry ? next_entry->island : 0, now);
	if (!prev_entry && !next_entry)
		return 0;
	__u64 rq_clock = atoll_rq_clock_of(prev_entry ? prev : next);

	if (prev_entry) {
		account_switch_out(prev, prev_entry->cgroup_id, prev_entry, rq_clock);
		if (prev_entry->island && atoll_btf_task_state(prev) == TASK_RUNNING) {
			/* Preempted: its wait starts now, on this CPU. */
			times = bpf_task_storage_get(&task_times, prev, 0,
						     BPF_LOCAL_STORAGE_GET_F_CREATE);
			if (times)
				stamp_island_wait(times, prev_entry->island,
						  bpf_get_smp_processor_id(), now, clock);
			else
				count_error(SCHED_ERROR_TASK_STORAGE);
		}
	}
	if (next_entry && clock)
		account_cross_island(next, next_entry, rq_clock, now, clock);
	return 0;
}

/* User page faults of monitored cgroups' tasks (x86's exceptions tracepoint;
 * the loader leaves it out where the kernel lacks it). */
SEC("tp_btf/page_fault_user")
int BPF_PROG(page_fault_user, unsigned long address, struct pt_regs *regs, unsigned long error_code)
{
	struct sched_monitor_entry *entry = task_entry(bpf_get_current_task_btf());
	struct sched_cgroup_stats *stats;

	if (!entry)
		return 0;
	stats = stats_of(entry);
	if (stats)
		stats->page_faults++;
	return 0;
}
