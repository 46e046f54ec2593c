#pragma once
// Kernel configuration probe: the running kernel's configuration, from
// /proc/config.gz or /boot/config-<release>, compared with atoll.config.
#include <optional>
#include <string>
#include <string_view>

#include "kernel-configs/Feature.h"
#include "kernel-configs/KernelConfig.h"
#include "util/Result.h"

namespace Atoll::capability {

inline constexpr std::string_view kProcConfigGzPath = "/proc/config.gz";
inline constexpr std::string_view kBootConfigPrefix = "/boot/config-";

struct KernelConfigText {
  std::string path;
  std::string text;
};

// Reads a gzip-compressed file whole (zlib).
Result<std::string> readGzipFile(const std::string& path);

// The running kernel's configuration text; nullopt when neither file exists.
Result<std::optional<KernelConfigText>> readRunningKernelConfig(std::string_view release);

// Verdict for "kernel_config" from a comparison against the config at source.
Feature assessKernelConfig(const ConfigComparison& comparison, const std::string& source);

Feature probeKernelConfig(std::string_view release);

}  // namespace Atoll::capability
