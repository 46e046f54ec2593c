#pragma once
// Turning forecast quantiles into the planner's scores. Pure functions.
//
// Exceedance probability of one step: the quantile function is known at
// p50, p95 and p99; between them it is interpolated linearly in probability,
// below p50 it falls linearly to probability 1 at zero demand, beyond p99 it
// decays exponentially with the p95-p99 spacing. The probability that demand
// exceeds capacity "within the horizon" is reported as the largest per-step
// probability (a lower bound of the union; steps of one series are strongly
// dependent, so the bound is close).
#include <array>
#include <span>

#include "forecast/Sample.h"
#include "forecast/SeriesModel.h"

namespace Atoll::forecast {

double exceedanceProbability(const Quantiles& q, double capacity);

struct ContentionScore {
  double probability = 0;  // max over steps of P(demand > capacity)
  int peakStep = -1;       // step (1-based) of that maximum; -1 when no step
  int firstRiskStep = -1;  // first step with P >= riskThreshold; -1 when none
};

ContentionScore contentionScore(std::span<const Quantiles> profile, double capacity,
                                double riskThreshold = 0.05);

// Per VM: how likely it is to be starved of any resource it has an allocation
// for, and which resource drives that.
struct VmPressure {
  double probability = 0;
  Metric driver = Metric::Cpu;
  int firstRiskStep = -1;
};

// profiles[m] / allocations[m] per Metric; a metric with an empty profile or
// a non-positive allocation is not considered.
VmPressure vmPressure(const std::array<std::span<const Quantiles>, kMetricCount>& profiles,
                      const std::array<double, kMetricCount>& allocations,
                      double riskThreshold = 0.05);

}  // namespace Atoll::forecast
