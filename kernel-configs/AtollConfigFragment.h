#pragma once
// kernel-configs/atoll.config, embedded at build time so that the `atoll`
// binary checks a host without the source tree next to it.
#include <string_view>

namespace Atoll::capability {

std::string_view atollConfigFragment();

// Name used for the embedded fragment in parse errors.
inline constexpr std::string_view kAtollConfigFragmentName = "kernel-configs/atoll.config";

}  // namespace Atoll::capability
