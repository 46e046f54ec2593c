// SPDX-License-Identifier: GPL-2.0
/* Tiny programs, one per BPF program or map type Atoll relies on. `atoll
 * check` loads them one at a time (the others' autoload switched off), so a
 * kernel that lacks one type degrades only the feature that needs it. Each
 * program leaves a trace user space can verify: loading alone does not prove
 * the kernel runs the program. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "capability_probe.h"

char LICENSE[] SEC("license") = "GPL";

/* The probing process: counts are limited to it so other load on the host
 * cannot satisfy a probe by accident. */
const volatile __u32 target_tgid = 0;

__u64 switches_seen = 0;
__u64 egress_packets = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} records SEC(".maps");

/* CO-RE field access on a BTF-typed tracepoint argument. */
SEC("tp_btf/sched_switch")
int BPF_PROG(probe_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	if (prev->tgid == target_tgid)
		__sync_fetch_and_add(&switches_seen, 1);
	return 0;
}

/* A socket filter is the simplest program user space can run on demand
 * (BPF_PROG_TEST_RUN), so the ring buffer is tested on its own. */
SEC("socket")
int probe_ringbuf(struct __sk_buff *skb)
{
	struct capability_probe_record *record;

	record = bpf_ringbuf_reserve(&records, sizeof(*record), 0);
	if (!record)
		return 0;
	record->magic = CAPABILITY_PROBE_MAGIC;
	record->packet_length = skb->len;
	bpf_ringbuf_submit(record, 0);
	return 0;
}

/* Counts packets and lets every one through. */
SEC("cgroup_skb/egress")
int probe_cgroup_egress(struct __sk_buff *skb)
{
	__sync_fetch_and_add(&egress_packets, 1);
	return 1;
}

/* One line per thread-group leader: user space looks for its own pid. */
SEC("iter/task")
int probe_iter_task(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;

	if (!task || task->pid != task->tgid)
		return 0;
	BPF_SEQ_PRINTF(ctx->meta->seq, "%d\n", task->tgid);
	return 0;
}
