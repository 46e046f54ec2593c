#include "migrate/transfer/Rate.h"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace Atoll::transfer {

Result<uint64_t> parseRate(std::string_view text, std::string_view what) {
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  std::string_view suffix(end, static_cast<size_t>(text.data() + text.size() - end));
  double scale = 1;
  if (suffix == "k" || suffix == "K") {
    scale = 1024.0;
  } else if (suffix == "m" || suffix == "M") {
    scale = 1024.0 * 1024;
  } else if (suffix == "g" || suffix == "G") {
    scale = 1024.0 * 1024 * 1024;
  } else if (!suffix.empty()) {
    ec = std::errc::invalid_argument;
  }
  double bytes = value * scale;
  if (ec != std::errc() || text.empty() || !std::isfinite(bytes) || bytes < 0 ||
      bytes >= static_cast<double>(kRateCeiling)) {
    return Error::invalid("parse", std::string(what), std::string(text),
                          "expected bytes per second, e.g. 0, 500k, 100M or 1G");
  }
  // Below one byte per second the cap would truncate to 0, which means none.
  if (bytes > 0 && bytes < 1) {
    return Error::invalid("parse", std::string(what), std::string(text),
                          "a cap is at least 1 byte per second (0 for none)");
  }
  return static_cast<uint64_t>(bytes);
}

std::string formatRate(uint64_t bytesPerSecond) {
  if (bytesPerSecond == 0) return "0 (none)";
  char text[48];
  double value = static_cast<double>(bytesPerSecond);
  if (value >= 1024.0 * 1024 * 1024) {
    std::snprintf(text, sizeof text, "%.1f GiB/s", value / (1024.0 * 1024 * 1024));
  } else if (value >= 1024.0 * 1024) {
    std::snprintf(text, sizeof text, "%.1f MiB/s", value / (1024.0 * 1024));
  } else if (value >= 1024.0) {
    std::snprintf(text, sizeof text, "%.1f KiB/s", value / 1024.0);
  } else {
    std::snprintf(text, sizeof text, "%llu B/s", static_cast<unsigned long long>(bytesPerSecond));
  }
  return text;
}

}  // namespace Atoll::transfer
