#include "forecast/Scores.h"

#include <gtest/gtest.h>

namespace Atoll::forecast {
namespace {

TEST(Scores, ExceedanceFollowsTheQuantiles) {
  const Quantiles q{50, 80, 90};
  EXPECT_DOUBLE_EQ(exceedanceProbability(q, 50), 0.5);
  EXPECT_DOUBLE_EQ(exceedanceProbability(q, 80), 0.05);
  EXPECT_DOUBLE_EQ(exceedanceProbability(q, 90), 0.01);
  EXPECT_NEAR(exceedanceProbability(q, 65), 0.275, 1e-12);
  EXPECT_LT(exceedanceProbability(q, 100), 0.01);
  EXPECT_GT(exceedanceProbability(q, 100), 0.0);
  EXPECT_DOUBLE_EQ(exceedanceProbability(q, 0), 1.0);
  EXPECT_DOUBLE_EQ(exceedanceProbability(q, 25), 0.75);
}

TEST(Scores, ContentionReportsPeakAndFirstRiskStep) {
  std::vector<Quantiles> profile{{10, 20, 25}, {30, 60, 70}, {50, 90, 100}, {20, 30, 40}};
  const ContentionScore score = contentionScore(profile, 59.0, 0.05);
  EXPECT_EQ(score.firstRiskStep, 2);
  EXPECT_EQ(score.peakStep, 3);
  EXPECT_GT(score.probability, 0.05);
  EXPECT_LT(score.probability, 0.5);
  const ContentionScore calm = contentionScore(profile, 1000.0, 0.05);
  EXPECT_EQ(calm.firstRiskStep, -1);
  EXPECT_LT(calm.probability, 0.01);
}

TEST(Scores, VmPressureNamesTheDriver) {
  std::vector<Quantiles> cpu{{1, 2, 3}};
  std::vector<Quantiles> memory{{7, 9, 10}};
  std::array<std::span<const Quantiles>, kMetricCount> profiles{cpu, memory, {}, {}};
  const VmPressure pressure = vmPressure(profiles, {4.0, 8.0, 0, 0});
  EXPECT_EQ(pressure.driver, Metric::Memory);
  EXPECT_GT(pressure.probability, 0.05);
  const VmPressure none = vmPressure(profiles, {0, 0, 0, 0});
  EXPECT_EQ(none.probability, 0.0);
}

}  // namespace
}  // namespace Atoll::forecast
