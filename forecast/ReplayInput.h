#pragma once
// Reading a replay input: a CSV with the header `timestamp,value` at a fixed
// step. Parsing is separate from file access so every rule is unit tested.
// Rejected (with file, line and value): a bad header, a missing or extra
// field, a non-numeric field, NaN or infinite values, negative values,
// timestamps that repeat or go backwards, and gaps longer than maxGapSteps
// times the series' step.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "forecast/InputError.h"

namespace Atoll::forecast {

struct ReplaySeries {
  std::string name;  // file name without .csv
  std::vector<double> timestamps;
  std::vector<double> values;
};

struct ReplayInputRules {
  double maxGapSteps = 12;  // longest accepted interval, in units of the first interval
};

// Timestamps: UNIX seconds (integer or decimal) or ISO 8601 UTC
// (YYYY-MM-DD[T ]HH:MM[:SS][Z]).
bool parseTimestamp(std::string_view text, double& seconds);

Parsed<ReplaySeries> parseReplayCsv(std::string_view content, const std::string& fileLabel,
                                    const ReplayInputRules& rules = {});
Parsed<ReplaySeries> readReplayCsv(const std::string& path, const ReplayInputRules& rules = {});

// Expands directories into the *.csv files they hold (sorted); files are kept
// as given. An entry that is neither is an error naming it.
Parsed<std::vector<std::string>> collectReplayInputs(const std::vector<std::string>& paths);

}  // namespace Atoll::forecast
