#include "forecast/Scores.h"

#include <algorithm>
#include <cmath>

namespace Atoll::forecast {

double exceedanceProbability(const Quantiles& q, double capacity) {
  if (capacity <= 0) return 1.0;
  if (capacity <= q.p50) return q.p50 > 0 ? 0.5 + 0.5 * (q.p50 - capacity) / q.p50 : 0.5;
  if (capacity <= q.p95) {
    const double span = q.p95 - q.p50;
    return span > 0 ? 0.5 - 0.45 * (capacity - q.p50) / span : 0.05;
  }
  if (capacity <= q.p99) {
    const double span = q.p99 - q.p95;
    return span > 0 ? 0.05 - 0.04 * (capacity - q.p95) / span : 0.01;
  }
  const double spacing = q.p99 - q.p95;
  if (spacing <= 0) return 0.0;
  // 5x less likely per p95-p99 spacing, matching the 0.05 -> 0.01 ratio.
  return 0.01 * std::exp(-std::log(5.0) * (capacity - q.p99) / spacing);
}

ContentionScore contentionScore(std::span<const Quantiles> profile, double capacity,
                                double riskThreshold) {
  ContentionScore score;
  for (size_t k = 0; k < profile.size(); ++k) {
    const double p = exceedanceProbability(profile[k], capacity);
    if (p > score.probability) {
      score.probability = p;
      score.peakStep = static_cast<int>(k) + 1;
    }
    if (score.firstRiskStep < 0 && p >= riskThreshold)
      score.firstRiskStep = static_cast<int>(k) + 1;
  }
  return score;
}

VmPressure vmPressure(const std::array<std::span<const Quantiles>, kMetricCount>& profiles,
                      const std::array<double, kMetricCount>& allocations, double riskThreshold) {
  VmPressure pressure;
  bool any = false;
  for (int m = 0; m < kMetricCount; ++m) {
    if (profiles[m].empty() || !(allocations[m] > 0)) continue;
    const ContentionScore score = contentionScore(profiles[m], allocations[m], riskThreshold);
    if (!any || score.probability > pressure.probability) {
      pressure.probability = score.probability;
      pressure.driver = static_cast<Metric>(m);
      pressure.firstRiskStep = score.firstRiskStep;
      any = true;
    }
  }
  return pressure;
}

}  // namespace Atoll::forecast
