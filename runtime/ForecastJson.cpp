#include "runtime/ForecastJson.h"

#include <cmath>

namespace Atoll {

namespace {

double seconds(int64_t ns) {
  return static_cast<double>(ns) / 1e9;
}

// JSON has no NaN or infinity; a value the model could not give is null.
nlohmann::json number(double value) {
  return std::isfinite(value) ? nlohmann::json(value) : nlohmann::json(nullptr);
}

}  // namespace

std::optional<forecast::Metric> parseForecastMetric(const std::string& text) {
  for (int m = 0; m < forecast::kMetricCount; ++m) {
    auto metric = static_cast<forecast::Metric>(m);
    if (text == forecast::metricName(metric)) return metric;
  }
  return std::nullopt;
}

std::string_view forecastUnit(forecast::Metric metric) {
  switch (metric) {
    case forecast::Metric::Cpu:
      return "cores";
    case forecast::Metric::Memory:
      return "bytes";
    case forecast::Metric::Io:
    case forecast::Metric::Network:
      return "bytes/s";
  }
  return "";
}

nlohmann::json shortTermJson(const forecast::ShortTermSnapshot& s) {
  return {{"last_sample_ns", s.lastSampleNs}, {"p50", number(s.p50)}, {"p95", number(s.p95)}};
}

nlohmann::json profileJson(const forecast::ProfileSnapshot& s) {
  nlohmann::json steps = nlohmann::json::array();
  const uint32_t count = std::min<uint32_t>(s.steps, forecast::kMaxProfileSteps);
  for (uint32_t k = 0; k < count; ++k)
    steps.push_back({{"step", k + 1},
                     {"horizon_seconds", seconds(s.stepNs) * (k + 1)},
                     {"p50", number(s.p50[k])},
                     {"p95", number(s.p95[k])},
                     {"p99", number(s.p99[k])}});
  nlohmann::json accuracy = nlohmann::json::array();
  const uint32_t tracked = std::min<uint32_t>(s.trackedCount, forecast::kMaxTrackedHorizons);
  for (uint32_t j = 0; j < tracked; ++j) {
    const forecast::AccuracyRecord& a = s.accuracy[j];
    nlohmann::json row = {{"horizon_steps", a.horizon},
                          {"horizon_seconds", seconds(s.stepNs) * a.horizon},
                          {"errors", a.errors}};
    // Before the first error is scored there is no accuracy to report.
    row["mase"] = a.errors > 0 ? number(a.mase) : nlohmann::json(nullptr);
    row["coverage95"] = a.errors > 0 ? number(a.coverage95) : nlohmann::json(nullptr);
    accuracy.push_back(std::move(row));
  }
  return {{"origin_step_ns", s.originStepNs},
          {"step_seconds", seconds(s.stepNs)},
          {"published_at_tick", s.tick},
          {"steps", std::move(steps)},
          {"accuracy", std::move(accuracy)}};
}

nlohmann::json islandProfileJson(const forecast::ProfileSnapshot& s) {
  nlohmann::json out = profileJson(s);
  out["capacity"] = number(s.capacity);
  out["contention_probability"] = number(s.contentionProbability);
  out["peak_step"] = s.peakStep < 0 ? nlohmann::json(nullptr) : nlohmann::json(s.peakStep);
  out["first_risk_step"] =
      s.firstRiskStep < 0 ? nlohmann::json(nullptr) : nlohmann::json(s.firstRiskStep);
  return out;
}

}  // namespace Atoll
