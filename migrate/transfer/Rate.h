#pragma once
// Bandwidth rates as operators write them, in bytes per second: "0" (no
// cap), "500k", "100M", "1.5G" (powers of 1024). The CLI, the daemon's
// configuration and its API all read rates through this one parser.
#include <cstdint>
#include <string>
#include <string_view>

#include "util/Result.h"

namespace Atoll::transfer {

// Rates are below this many bytes per second: far above any link, and where
// the text's conversion would overflow. A rate given as a number must stay
// below it too.
inline constexpr uint64_t kRateCeiling = 9'200'000'000'000'000'000ull;

// `what` names the option or key in the error, which also quotes the text.
Result<uint64_t> parseRate(std::string_view text, std::string_view what);

// "0 (none)", "512.0 KiB/s", "100.0 MiB/s": for messages and progress lines.
std::string formatRate(uint64_t bytesPerSecond);

}  // namespace Atoll::transfer
