#pragma once
// Reading replay output back (for plots): the p50/p95 of one series at one
// horizon, placed at their target row (origin_index + horizon).
#include <string>
#include <string_view>
#include <vector>

#include "forecast/InputError.h"

namespace Atoll::forecast {

struct ReplayForecastPath {
  std::vector<double> p50;  // indexed by target row; NaN where no forecast
  std::vector<double> p95;
};

Parsed<ReplayForecastPath> parseReplayOutput(std::string_view content, const std::string& fileLabel,
                                             const std::string& series, int horizon);
Parsed<ReplayForecastPath> readReplayOutput(const std::string& path, const std::string& series,
                                            int horizon);

}  // namespace Atoll::forecast
