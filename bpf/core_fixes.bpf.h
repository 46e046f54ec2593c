/* SPDX-License-Identifier: GPL-2.0 */
/* Kernel-version differences the programs must survive, in the manner of
 * libbpf-tools' core_fixes.bpf.h: each helper picks the field layout of the
 * running kernel through CO-RE existence checks. */
#ifndef ATOLL_CORE_FIXES_BPF_H
#define ATOLL_CORE_FIXES_BPF_H

#include <bpf/bpf_core_read.h>

/* Kernel 5.14 renamed task_struct::state to __state (and made it unsigned). */
struct task_struct___pre_5_14 {
	long int state;
} __attribute__((preserve_access_index));

static __always_inline __s64 atoll_task_state(void *task)
{
	struct task_struct___pre_5_14 *old = task;

	if (bpf_core_field_exists(old->state))
		return BPF_CORE_READ(old, state);
	return BPF_CORE_READ((struct task_struct *)task, __state);
}

/* Kernel 5.5 made kernfs_node::id a plain u64 (it was a union before); the
 * cgroup2 id bpf_get_current_cgroup_id() returns is that value. */
union kernfs_node_id___pre_5_5 {
	struct {
		__u32 ino;
		__u32 generation;
	};
	__u64 id;
} __attribute__((preserve_access_index));

struct kernfs_node___pre_5_5 {
	union kernfs_node_id___pre_5_5 id;
} __attribute__((preserve_access_index));

/* The cgroup2 id of any task (not only the current one). */
static __always_inline __u64 atoll_task_cgroup_id(struct task_struct *task)
{
	struct kernfs_node *kn = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn);

	if (bpf_core_type_exists(union kernfs_node_id___pre_5_5)) {
		struct kernfs_node___pre_5_5 *old = (void *)kn;

		return BPF_CORE_READ(old, id.ino);
	}
	return BPF_CORE_READ(kn, id);
}

/* The same two reads for BTF-typed task pointers (tp_btf arguments): plain
 * loads the verifier turns into exception-safe ones, no helper calls, on the
 * scheduler's hot path. The pre-5.14 and pre-5.5 layouts fall back to the
 * helpers above; CO-RE drops the branch the running kernel does not need. */
static __always_inline __s64 atoll_btf_task_state(struct task_struct *task)
{
	struct task_struct___pre_5_14 *old = (void *)task;

	if (bpf_core_field_exists(old->state))
		return BPF_CORE_READ(old, state);
	return task->__state;
}

static __always_inline __u64 atoll_btf_task_cgroup_id(struct task_struct *task)
{
	if (bpf_core_type_exists(union kernfs_node_id___pre_5_5))
		return atoll_task_cgroup_id(task);
	return task->cgroups->dfl_cgrp->kn->id;
}

/* The CPU whose run queue holds a task: task_struct::cpu before 5.16 moved it
 * into thread_info on x86. */
struct task_struct___pre_5_16 {
	unsigned int cpu;
} __attribute__((preserve_access_index));

static __always_inline __u32 atoll_task_cpu(struct task_struct *task)
{
	struct task_struct___pre_5_16 *old = (void *)task;

	if (bpf_core_field_exists(old->cpu))
		return BPF_CORE_READ(old, cpu);
	return task->thread_info.cpu;
}

/* The clock of the run queue a task is on (the one sched_info stamps with),
 * reached through the task's CFS run queue: the per-CPU `runqueues` symbol is
 * not resolvable without CONFIG_KALLSYMS_ALL. Without group scheduling the
 * CFS run queue is embedded in struct rq and has no back pointer. */
static __always_inline __u64 atoll_rq_clock_of(struct task_struct *task)
{
	struct cfs_rq *cfs_rq = task->se.cfs_rq;

	if (bpf_core_field_exists(cfs_rq->rq))
		return cfs_rq->rq->clock;
	struct rq *rq = (void *)((char *)cfs_rq - bpf_core_field_offset(struct rq, cfs));

	return BPF_CORE_READ(rq, clock);
}

#endif /* ATOLL_CORE_FIXES_BPF_H */
