#include "migrate/planner/Contention.h"

#include <algorithm>
#include <cmath>

#include "forecast/Scores.h"

namespace Atoll::planner {

namespace {

// Integral over u in [u0, u1] of (q(u) - capacity)+ where q is linear from
// (u0, q0) to (u1, q1).
double segmentExcess(double u0, double q0, double u1, double q1, double capacity) {
  const double a = q0 - capacity;
  const double b = q1 - capacity;
  if (a <= 0 && b <= 0) return 0;
  const double width = u1 - u0;
  if (a >= 0 && b >= 0) return width * (a + b) / 2;
  // One end above capacity: the triangle from the crossing.
  const double high = std::max(a, b);
  const double low = std::min(a, b);
  return width * high / (high - low) * high / 2;
}

}  // namespace

double expectedUnmetDemand(const forecast::Quantiles& q, double capacity) {
  const double p50 = std::max(0.0, q.p50);
  const double p95 = std::max(p50, q.p95);
  const double p99 = std::max(p95, q.p99);
  if (capacity <= 0) capacity = 0;
  double total = segmentExcess(0.0, 0.0, 0.5, p50, capacity) +
                 segmentExcess(0.5, p50, 0.95, p95, capacity) +
                 segmentExcess(0.95, p95, 0.99, p99, capacity);
  // Tail: q(u) = p99 + s ln(0.01 / (1 - u)), s = (p99 - p95) / ln 5.
  const double s = (p99 - p95) / std::log(5.0);
  const double a = p99 - capacity;
  if (a >= 0) {
    total += 0.01 * (a + s);
  } else if (s > 0) {
    total += s * 0.01 * std::exp(a / s);
  }
  return total;
}

forecast::Quantiles quantilesAt(const forecast::ProfileSnapshot& profile, int step) {
  return {profile.p50[step], profile.p95[step], profile.p99[step]};
}

HorizonContention horizonContention(const forecast::ProfileSnapshot& profile, int horizonSteps,
                                    double capacity, double riskThreshold,
                                    const forecast::ProfileSnapshot* vm, double vmSign) {
  HorizonContention out;
  const int steps = std::min<int>(static_cast<int>(profile.steps), horizonSteps);
  const double stepSeconds = static_cast<double>(profile.stepNs) / 1e9;
  for (int k = 0; k < steps; ++k) {
    forecast::Quantiles q = quantilesAt(profile, k);
    if (vm != nullptr && k < static_cast<int>(vm->steps)) {
      if (vmSign > 0) {
        q.p50 += vm->p50[k];
        q.p95 += vm->p95[k];
        q.p99 += vm->p99[k];
      } else {
        q.p50 -= vm->p50[k];
        q.p95 -= vm->p50[k];
        q.p99 -= vm->p50[k];
      }
    }
    q.p50 = std::max(0.0, q.p50);
    q.p95 = std::max(q.p50, q.p95);
    q.p99 = std::max(q.p95, q.p99);
    const double p = forecast::exceedanceProbability(q, capacity);
    if (p > out.probability) out.probability = p;
    if (out.firstRiskStep < 0 && p >= riskThreshold) out.firstRiskStep = k + 1;
    out.unmetCoreSeconds += expectedUnmetDemand(q, capacity) * stepSeconds;
    out.p50Peak = std::max(out.p50Peak, q.p50);
    out.p95Peak = std::max(out.p95Peak, q.p95);
    out.p99Peak = std::max(out.p99Peak, q.p99);
  }
  return out;
}

}  // namespace Atoll::planner
