#pragma once
// Kernel BTF probe: /sys/kernel/btf/vmlinux exists, parses with libbpf and
// describes task_struct, which every CO-RE program Atoll loads relocates
// against.
#include <string_view>

#include "kernel-configs/Feature.h"

namespace Atoll::capability {

inline constexpr std::string_view kVmlinuxBtfPath = "/sys/kernel/btf/vmlinux";

Feature probeBtf();

}  // namespace Atoll::capability
