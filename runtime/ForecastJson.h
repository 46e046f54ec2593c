#pragma once
// The forecaster's snapshots as the API serves them: a workload's short-term
// forecast and demand profile (horizon -> p50/p95/p99, running accuracy per
// tracked horizon), and an island's profile with its contention score. Pure
// functions of the snapshots, so the shape is tested without a daemon.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "forecast/Sample.h"
#include "forecast/Snapshot.h"

namespace Atoll {

// "cpu", "memory", "io", "network"; nullopt for anything else.
std::optional<forecast::Metric> parseForecastMetric(const std::string& text);
// The unit of a metric's values: "cores", "bytes", "bytes/s".
std::string_view forecastUnit(forecast::Metric metric);

nlohmann::json shortTermJson(const forecast::ShortTermSnapshot& snapshot);
// Steps of the profile with their horizon in seconds, and accuracy rows.
nlohmann::json profileJson(const forecast::ProfileSnapshot& snapshot);
// profileJson plus capacity, contention probability, peak and first risk step.
nlohmann::json islandProfileJson(const forecast::ProfileSnapshot& snapshot);

}  // namespace Atoll
