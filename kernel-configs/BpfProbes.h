#pragma once
// BPF probes: the program and map types Atoll's telemetry uses, each proved
// by loading and running one tiny program of bpf/capability_probe.bpf.c on
// its own, so one missing type degrades only the feature that needs it.
#include <optional>
#include <string>
#include <vector>

#include "kernel-configs/Feature.h"

namespace Atoll::capability {

// bpf.tp_btf, bpf.ringbuf, bpf.cgroup_skb, bpf.iter_task, in that order.
// cgroup2Path is where the cgroup_skb probe creates (and removes) its
// scratch cgroup; without one that probe reports the feature absent.
std::vector<Feature> probeBpfPrograms(const std::optional<std::string>& cgroup2Path);

}  // namespace Atoll::capability
