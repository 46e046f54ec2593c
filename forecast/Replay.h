#pragma once
// Replay: feeds a recorded series to the same SeriesModel the daemon runs,
// strictly in order, and after each row t writes one output row per horizon h
// with the forecast of row t + h: `series,origin_index,horizon,p50,p95`.
// Nothing after row t is visible when row t's forecasts are written.
#include <string>
#include <vector>

#include "forecast/ModelConfig.h"
#include "forecast/ReplayInput.h"

namespace Atoll::forecast {

inline constexpr const char* kReplayHeader = "series,origin_index,horizon,p50,p95\n";

// The model configuration a replay uses: the daemon's defaults, with the
// requested horizons tracked as well.
ModelConfig replayModelConfig(const std::vector<int>& horizons, int seasonSteps = 288);

// Appends the output rows of one series to `out`.
void replaySeries(const ReplaySeries& series, const ModelShape& shape,
                  const std::vector<int>& horizons, std::string& out);

// Parses "1,12,72" into horizons; an error names the bad item.
Parsed<std::vector<int>> parseHorizonList(const std::string& text);

}  // namespace Atoll::forecast
