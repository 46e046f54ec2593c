#include <gtest/gtest.h>

#include "forecast/Scores.h"
#include "migrate/planner/Contention.h"
#include "tests/migrate/planner/PlannerFixtures.h"

namespace Atoll::planner {
namespace {

using testing::flatProfile;

TEST(ExpectedUnmetDemand, NoneWellAboveTheTail) {
  forecast::Quantiles q{2, 3, 4};
  EXPECT_LT(expectedUnmetDemand(q, 20), 1e-6);
  EXPECT_EQ(forecast::exceedanceProbability(q, 20) > 0, expectedUnmetDemand(q, 20) > 0);
}

TEST(ExpectedUnmetDemand, AtZeroCapacityIsTheMeanOfTheQuantileFunction) {
  forecast::Quantiles q{4, 4, 4};  // linear 0..4 on [0, 0.5], then 4
  EXPECT_NEAR(expectedUnmetDemand(q, 0), 0.5 * 2 + 0.5 * 4, 1e-9);
}

TEST(ExpectedUnmetDemand, FallsAsCapacityRisesAndIsProbabilityTimesDepth) {
  forecast::Quantiles q{6, 9, 11};
  double previous = 1e9;
  for (double capacity = 0; capacity < 16; capacity += 0.5) {
    const double e = expectedUnmetDemand(q, capacity);
    EXPECT_LE(e, previous + 1e-12) << capacity;
    const double p = forecast::exceedanceProbability(q, capacity);
    // The mean shortfall given a shortfall (depth) is positive and below the
    // p99's distance plus the tail's scale.
    if (p > 1e-9) {
      EXPECT_GT(e / p, 0);
    }
    previous = e;
  }
  // Between p95 and p99 the depth is under p99 - capacity + tail.
  EXPECT_LT(expectedUnmetDemand(q, 10) / forecast::exceedanceProbability(q, 10), 2.0);
}

TEST(HorizonContention, SumsStepsOverTheHorizonOnly) {
  auto profile = flatProfile(10, 12, 13, 24);
  auto twelve = horizonContention(profile, 12, 8, 0.05);
  auto six = horizonContention(profile, 6, 8, 0.05);
  EXPECT_NEAR(twelve.unmetCoreSeconds, 2 * six.unmetCoreSeconds, 1e-6);
  EXPECT_EQ(twelve.firstRiskStep, 1);
  EXPECT_GT(twelve.probability, 0.5);
  EXPECT_FLOAT_EQ(twelve.p95Peak, 12);
}

TEST(HorizonContention, AddingAVmAddsItsQuantilesRemovingTakesItsMedian) {
  auto islandProfile = flatProfile(4, 5, 6);
  auto vm = flatProfile(2, 3, 4);
  auto added = horizonContention(islandProfile, 12, 100, 0.05, &vm, +1);
  auto removed = horizonContention(islandProfile, 12, 100, 0.05, &vm, -1);
  EXPECT_FLOAT_EQ(added.p50Peak, 6);
  EXPECT_FLOAT_EQ(added.p95Peak, 8);
  EXPECT_FLOAT_EQ(removed.p50Peak, 2);
  EXPECT_FLOAT_EQ(removed.p95Peak, 3);
}

}  // namespace
}  // namespace Atoll::planner
