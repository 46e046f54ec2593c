/* Kernel/user contract of the capability probes that `atoll check` loads:
 * the record the ring buffer probe submits, checked field by field in user
 * space so that a record mangled on the way fails the probe. */
#ifndef ATOLL_BPF_CAPABILITY_PROBE_H
#define ATOLL_BPF_CAPABILITY_PROBE_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define CAPABILITY_PROBE_MAGIC 0x61746f6cu /* "atol" */

struct capability_probe_record {
	__u32 magic;
	__u32 packet_length; /* length of the test packet the program ran on */
};

#endif /* ATOLL_BPF_CAPABILITY_PROBE_H */
