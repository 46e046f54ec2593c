#pragma once
// Contention over a horizon from forecast quantiles. The probability of each
// step is forecast::exceedanceProbability; the depth is the mean unmet demand
// when it exceeds capacity, integrated from the same quantile function that
// probability assumes (linear from zero through p50, p95 and p99, then an
// exponential tail with the p95-p99 spacing), so probability x depth is the
// expected unmet demand of the step.
#include <span>

#include "forecast/SeriesModel.h"
#include "forecast/Snapshot.h"

namespace Atoll::planner {

// E[(demand - capacity)+] of one step, cores.
double expectedUnmetDemand(const forecast::Quantiles& q, double capacity);

// One island's forecast over the planning horizon. With `vm`, that VM's
// demand is added (vmSign > 0: its p50, p95 and p99 onto the island's, the
// cautious sum of demands that rise together) or removed (vmSign < 0: its p50
// from every quantile, as its share of the spread is unknown), clamped at 0.
struct HorizonContention {
  double probability = 0;       // max over steps of P(demand > capacity)
  int firstRiskStep = -1;       // first step with P >= risk threshold (1-based)
  double unmetCoreSeconds = 0;  // sum over steps of E[unmet] x step seconds
  double p50Peak = 0;
  double p95Peak = 0;
  double p99Peak = 0;
};

// Reads min(steps, horizonSteps) steps of `profile`.
HorizonContention horizonContention(const forecast::ProfileSnapshot& profile, int horizonSteps,
                                    double capacity, double riskThreshold,
                                    const forecast::ProfileSnapshot* vm = nullptr,
                                    double vmSign = 0);

forecast::Quantiles quantilesAt(const forecast::ProfileSnapshot& profile, int step);

}  // namespace Atoll::planner
