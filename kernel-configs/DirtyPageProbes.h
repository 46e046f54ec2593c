#pragma once
// Dirty-page tracking probes for live migration: userfaultfd asynchronous
// write-protect, the PAGEMAP_SCAN ioctl, and the soft-dirty fallback. Each
// one is exercised on a small private mapping of this process, not inferred
// from version numbers.
#include <string_view>
#include <vector>

#include "kernel-configs/Feature.h"

namespace Atoll::capability {

inline constexpr std::string_view kPagemapPath = "/proc/self/pagemap";
inline constexpr std::string_view kProcSelfPath = "/proc/self";
inline constexpr std::string_view kClearRefsFile = "clear_refs";
// Written to clear_refs: clears the soft-dirty bits of this process.
inline constexpr std::string_view kClearSoftDirtyValue = "4";

// userfaultfd.wp_async and pagemap_scan, in that order: the second needs a
// region protected by the first.
std::vector<Feature> probeWriteProtectTracking();

Feature probeSoftDirty();

}  // namespace Atoll::capability
