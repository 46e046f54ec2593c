#include "forecast/SeriesModel.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace Atoll::forecast {
namespace {

ModelShape defaultShape() {
  return ModelShape(ModelConfig{});
}

TEST(SeriesModel, ConstantSeriesForecastsTheConstant) {
  const ModelShape shape = defaultShape();
  SeriesModel model(shape);
  for (int i = 0; i < 400; ++i) model.update(42.0);
  for (int h : {1, 12, 72}) {
    const Quantiles q = model.forecast(h);
    EXPECT_NEAR(q.p50, 42.0, 1e-3) << h;
    EXPECT_GE(q.p95, q.p50);
    EXPECT_GE(q.p99, q.p95);
    EXPECT_NEAR(q.p95, 42.0, 1e-3) << "no error seen, so no spread";
  }
}

TEST(SeriesModel, LearnsADailySeason) {
  const ModelShape shape = defaultShape();
  SeriesModel model(shape);
  auto daily = [](int t) { return 50.0 + 40.0 * std::sin(2 * M_PI * (t % 288) / 288.0); };
  const int days = 6;
  for (int t = 0; t < days * 288; ++t) model.update(daily(t));
  const int now = days * 288 - 1;
  for (int h : {1, 12, 36, 72}) EXPECT_NEAR(model.forecast(h).p50, daily(now + h), 2.0) << h;
  // The seasonal models win at long horizons.
  const HorizonAccuracy acc = model.accuracy(shape.trackedCount() - 1);
  EXPECT_TRUE(acc.bestModel == ModelKind::SeasonalHoltWinters ||
              acc.bestModel == ModelKind::SeasonalNaive)
      << modelName(acc.bestModel);
  EXPECT_LT(acc.mase, 0.5);
}

TEST(SeriesModel, P95CoverageIsCalibratedOnSkewedNoise) {
  const ModelShape shape = defaultShape();
  SeriesModel model(shape);
  std::mt19937 rng(7);
  std::exponential_distribution<double> noise(0.2);
  for (int t = 0; t < 6000; ++t) model.update(10.0 + noise(rng));
  for (int j = 0; j < shape.trackedCount(); ++j) {
    const HorizonAccuracy acc = model.accuracy(j);
    EXPECT_GT(acc.coverage95, 0.90) << "h=" << acc.horizon;
    EXPECT_LT(acc.coverage95, 0.99) << "h=" << acc.horizon;
  }
}

// Calm and short bursty regimes alternate: the short-horizon band must follow
// the regime within a few steps (conditional on recent volatility); an error
// quantile tracked on its own moves too slowly to do so.
TEST(SeriesModel, ShortBandFollowsTheVolatilityRegime) {
  const ModelShape shape = defaultShape();
  SeriesModel model(shape);
  std::mt19937 rng(11);
  std::normal_distribution<double> noise(0.0, 1.0);
  double calmBand = 0, burstBand = 0;
  for (int cycle = 0; cycle < 40; ++cycle) {
    for (int t = 0; t < 100; ++t) model.update(50.0 + noise(rng));
    const Quantiles calm = model.forecast(1);
    for (int t = 0; t < 15; ++t) model.update(50.0 + 10.0 * noise(rng));
    const Quantiles burst = model.forecast(1);
    if (cycle >= 30) {
      calmBand += calm.p95 - calm.p50;
      burstBand += burst.p95 - burst.p50;
    }
  }
  EXPECT_GT(burstBand, 2.0 * calmBand);
}

// A robust level: an idle series with rare large spikes is forecast near its
// idle level, not near the spikes' mean.
TEST(SeriesModel, RareSpikesDoNotLiftTheForecast) {
  const ModelShape shape = defaultShape();
  SeriesModel model(shape);
  for (int t = 0; t < 3000; ++t) model.update(t % 37 == 0 ? 500.0 : 5.0);
  for (int h : {12, 72}) EXPECT_LT(model.forecast(h).p50, 5.0 + 0.02 * 495.0) << h;
}

TEST(SeriesModel, RecoversFromALevelShiftAndIdleThenBusy) {
  const ModelShape shape = defaultShape();
  SeriesModel model(shape);
  for (int t = 0; t < 3 * 288; ++t) model.update(0.0);  // zero for days
  EXPECT_NEAR(model.forecast(12).p50, 0.0, 1e-9);
  for (int t = 0; t < 48; ++t) model.update(80.0);  // then busy
  EXPECT_NEAR(model.forecast(1).p50, 80.0, 8.0);
  EXPECT_NEAR(model.forecast(12).p50, 80.0, 16.0);
}

TEST(SeriesModel, SpikesAndNonFiniteValuesDoNotPoisonTheState) {
  const ModelShape shape = defaultShape();
  SeriesModel model(shape);
  for (int t = 0; t < 600; ++t) model.update(t % 50 == 0 ? 1000.0 : 20.0);
  model.update(std::numeric_limits<double>::quiet_NaN());
  model.update(std::numeric_limits<double>::infinity());
  const Quantiles q = model.forecast(12);
  EXPECT_TRUE(std::isfinite(q.p50) && std::isfinite(q.p95) && std::isfinite(q.p99));
  EXPECT_NEAR(q.p50, 20.0, 10.0);
  EXPECT_EQ(model.steps(), 600u);
}

TEST(SeriesModel, ForecastsNeverNegative) {
  const ModelShape shape = defaultShape();
  SeriesModel model(shape);
  for (int t = 0; t < 300; ++t) model.update(std::max(0.0, 100.0 - t));  // falling to zero
  for (int h = 1; h <= 72; ++h) EXPECT_GE(model.forecast(h).p50, 0.0);
}

TEST(SeriesModel, MemoryPerSeriesWithinBudgetAtDailySeason) {
  const ModelShape shape = defaultShape();
  SeriesModel model(shape);
  EXPECT_LE(model.memoryBytes(), 8u * 1024u);
}

TEST(SeriesModel, ProfileMatchesPointForecasts) {
  const ModelShape shape = defaultShape();
  SeriesModel model(shape);
  for (int t = 0; t < 700; ++t) model.update(10 + (t % 7));
  std::vector<Quantiles> profile(72);
  model.profile(profile);
  for (int h = 1; h <= 72; ++h) {
    EXPECT_DOUBLE_EQ(profile[h - 1].p50, model.forecast(h).p50);
    EXPECT_DOUBLE_EQ(profile[h - 1].p95, model.forecast(h).p95);
  }
}

struct RegimeBands {
  double idleCoverage, busyCoverage, idleBand, busyBand;
};

// Idle-then-busy with noise proportional to the level: 2 +- 10 % idle,
// 100 +- 10 % busy, alternating every 150 steps; one-step p95 coverage and
// mean p95 - p50 band in each regime over the second half.
RegimeBands idleThenBusyBands(const ModelShape& shape) {
  SeriesModel model(shape);
  std::mt19937 rng(5);
  std::lognormal_distribution<double> noise(0.0, 0.1);
  RegimeBands out{0, 0, 0, 0};
  int idle = 0, busy = 0;
  for (int t = 0; t < 12000; ++t) {
    const bool isBusy = (t / 150) % 2 == 1;
    const double value = (isBusy ? 100.0 : 2.0) * noise(rng);
    const Quantiles q = model.forecast(1);
    // Score away from the switches, where no forecast can know the regime.
    if (t >= 6000 && t % 150 >= 20 && model.steps() > 0) {
      const double covered = value <= q.p95 ? 1.0 : 0.0;
      (isBusy ? out.busyCoverage : out.idleCoverage) += covered;
      (isBusy ? out.busyBand : out.idleBand) += q.p95 - q.p50;
      ++(isBusy ? busy : idle);
    }
    model.update(value);
  }
  out.idleCoverage /= idle;
  out.busyCoverage /= busy;
  out.idleBand /= idle;
  out.busyBand /= busy;
  return out;
}

TEST(SeriesModel, ShortBandScalesWithTheLevelOnIdleThenBusySeries) {
  ModelConfig config;
  config.seasonSteps = 0;
  const RegimeBands bands = idleThenBusyBands(ModelShape(config));
  config.tuning.relativeBandMaxHorizon = 0;  // the second tracker in series units only
  const RegimeBands flat = idleThenBusyBands(ModelShape(config));
  // Idle errors are 50 times smaller than busy ones: the band follows.
  EXPECT_LT(bands.idleBand, 0.1 * bands.busyBand);
  EXPECT_LT(bands.idleBand, 0.5 * flat.idleBand) << "level-relative band is tighter when idle";
  EXPECT_GT(bands.busyCoverage, 0.85);
  EXPECT_GT(bands.idleCoverage, 0.85);
}

// One-step mean absolute error of the forecaster on a series.
double oneStepMae(const ModelShape& shape, const std::vector<double>& values, size_t scoredFrom) {
  SeriesModel model(shape);
  double sum = 0;
  size_t count = 0;
  for (size_t t = 0; t + 1 < values.size(); ++t) {
    model.update(values[t]);
    if (t >= scoredFrom) {
      sum += std::fabs(values[t + 1] - model.forecast(1).p50);
      ++count;
    }
  }
  return sum / double(count);
}

TEST(SeriesModel, StackingLearnsWhichSideOfTheBlendTheActualsFall) {
  // A random walk far above zero: the last value is the best one-step
  // forecast (mean |error| = sqrt(2 / pi) = 0.798); the levels and means
  // trail it. The learned weights must move the blend toward the last value.
  std::mt19937 rng(11);
  std::normal_distribution<double> step(0.0, 1.0);
  std::vector<double> walk(4000);
  double level = 1000;
  for (double& v : walk) v = level += step(rng);
  ModelConfig plain;
  plain.seasonSteps = 0;
  plain.tuning.stackingMaxHorizon = 0;
  ModelConfig stacked = plain;
  stacked.tuning.stackingMaxHorizon = 3;
  const double plainMae = oneStepMae(ModelShape(plain), walk, 2000);
  const double stackedMae = oneStepMae(ModelShape(stacked), walk, 2000);
  EXPECT_LT(stackedMae, plainMae);
  EXPECT_LT(stackedMae, 0.798 * 1.05);
}

// Mean absolute error of p50 and mean p95 pinball loss at horizon h, and the
// p95 coverage, over the targets from scoredFrom on.
struct HorizonScore {
  double mae = 0;
  double pinball = 0;
  double coverage = 0;
};

HorizonScore scoreAt(const ModelShape& shape, const std::vector<double>& values, int h,
                     size_t scoredFrom) {
  SeriesModel model(shape);
  HorizonScore score;
  size_t count = 0;
  for (size_t t = 0; t + h < values.size(); ++t) {
    model.update(values[t]);
    if (t + h < scoredFrom) continue;
    const Quantiles q = model.forecast(h);
    const double actual = values[t + h];
    score.mae += std::fabs(actual - q.p50);
    score.pinball += actual > q.p95 ? 0.95 * (actual - q.p95) : 0.05 * (q.p95 - actual);
    score.coverage += actual <= q.p95 ? 1.0 : 0.0;
    ++count;
  }
  score.mae /= double(count);
  score.pinball /= double(count);
  score.coverage /= double(count);
  return score;
}

// Skewed noise around a fixed level (like a busy CPU trace): the models
// differ by little and their errors are strongly correlated, so the
// inverse-error blend mixes the weaker models' noise into p50; the sharper
// point weights follow the best of them.
std::vector<double> skewedNoise(unsigned seed, size_t length) {
  std::mt19937 rng(seed);
  std::exponential_distribution<double> noise(1.0 / 6.0);
  std::vector<double> values(length);
  for (double& v : values) v = 30 + noise(rng);
  return values;
}

TEST(SeriesModel, SharperPointWeightsLowerTheHourAheadError) {
  // Both over the band's models only (the point-only season median off),
  // and both weighted means at every horizon.
  ModelConfig blend;
  blend.tuning.pointSeasonMedian = false;
  blend.tuning.pointMedianHorizon = 0;
  blend.tuning.pointWeightPower = blend.tuning.weightPower;  // p50 = the centre blend
  ModelConfig sharp;                                         // default: sharper point weights
  sharp.tuning.pointSeasonMedian = false;
  sharp.tuning.pointMedianHorizon = 0;
  ASSERT_GT(sharp.tuning.pointWeightPower, sharp.tuning.weightPower);
  const ModelShape blendShape(blend), sharpShape(sharp);
  double ratio = 0;
  for (unsigned seed = 1; seed <= 3; ++seed) {
    const std::vector<double> values = skewedNoise(seed, 8000);
    const HorizonScore blended = scoreAt(blendShape, values, 12, 4000);
    const HorizonScore pointed = scoreAt(sharpShape, values, 12, 4000);
    ratio += pointed.mae / blended.mae / 3;
    // The band is anchored on the centre blend, so p95 is unchanged.
    EXPECT_DOUBLE_EQ(pointed.pinball, blended.pinball) << seed;
  }
  EXPECT_LT(ratio, 0.98);
}

// On a steady series the two error trackers score about the same, so their
// running losses cross often: picking one made the issued p95 jump between
// two offsets; blending them by loss^-16 keeps it steady, at no cost in
// pinball loss.
TEST(SeriesModel, BlendedTrackersSteadyTheBand) {
  ModelConfig picked;
  picked.tuning.trackerBlendPower = 0;  // the tracker with the lower loss alone
  const ModelShape pickedShape(picked), blendedShape{ModelConfig{}};
  auto run = [](const ModelShape& shape, const std::vector<double>& values, double& pinball,
                double& jump) {
    SeriesModel model(shape);
    const int h = 12;
    const size_t scoredFrom = values.size() / 2;
    double previous = -1;
    size_t count = 0;
    pinball = jump = 0;
    for (size_t t = 0; t + h < values.size(); ++t) {
      model.update(values[t]);
      if (t < scoredFrom) continue;
      const Quantiles q = model.forecast(h);
      const double actual = values[t + h];
      pinball += actual > q.p95 ? 0.95 * (actual - q.p95) : 0.05 * (q.p95 - actual);
      if (previous >= 0) jump += std::fabs((q.p95 - q.p50) - previous);
      previous = q.p95 - q.p50;
      ++count;
    }
    pinball /= double(count);
    jump /= double(count);
  };
  double pinballRatio = 0, jumpRatio = 0;
  for (unsigned seed = 1; seed <= 3; ++seed) {
    const std::vector<double> values = skewedNoise(seed, 8000);
    double pickedPinball, pickedJump, blendedPinball, blendedJump;
    run(pickedShape, values, pickedPinball, pickedJump);
    run(blendedShape, values, blendedPinball, blendedJump);
    pinballRatio += blendedPinball / pickedPinball / 3;
    jumpRatio += blendedJump / pickedJump / 3;
  }
  EXPECT_LT(jumpRatio, 0.95);    // measured 0.92
  EXPECT_LT(pinballRatio, 1.0);  // measured 0.9995: no worse
}

// Idle most of the time with short busy bursts (like many VM CPU traces):
// the MAE-optimal forecast beyond the next few minutes is the idle level (the
// median), while every mean-like level the band's models hold sits between
// idle and busy; the median of the last day's values follows it, so p50
// moves onto it, while the band keeps its own centre.
std::vector<double> idleWithBursts(unsigned seed, size_t length) {
  std::mt19937 rng(seed);
  std::exponential_distribution<double> noise(1.0);
  std::bernoulli_distribution start(0.05), stop(0.15);
  std::vector<double> values(length);
  bool busy = false;
  for (double& v : values) {
    busy = busy ? !stop(rng) : start(rng);
    v = (busy ? 60.0 : 4.0) + noise(rng);
  }
  return values;
}

TEST(SeriesModel, SeasonMedianLowersTheErrorOnIdleWithBursts) {
  // Both with p50 a weighted mean at every horizon: the model's own gain
  // (the weighted median hours ahead is tested below).
  ModelConfig withoutMedian;
  withoutMedian.tuning.pointSeasonMedian = false;
  withoutMedian.tuning.pointMedianHorizon = 0;
  ModelConfig withMedian;
  withMedian.tuning.pointMedianHorizon = 0;
  const ModelShape withoutShape(withoutMedian), withShape(withMedian);
  // At 5 min the last value and the stacking already hold the state (idle or
  // busy); the gain is an hour and more ahead.
  for (int h : {12, 72}) {
    double ratio = 0;
    for (unsigned seed = 1; seed <= 3; ++seed) {
      const std::vector<double> values = idleWithBursts(seed, 8000);
      const HorizonScore without = scoreAt(withoutShape, values, h, 4000);
      const HorizonScore with = scoreAt(withShape, values, h, 4000);
      ratio += with.mae / without.mae / 3;
      EXPECT_NEAR(with.coverage, without.coverage, 0.005) << "h=" << h << " seed " << seed;
    }
    EXPECT_LT(ratio, 0.985) << "h=" << h;
  }
}

// Noise whose scale jumps by up to 1000x every 2-5 days (like memory, disk
// and network series): the 6 h error quantile, tracked in the series' units
// with feedback 6 h late, takes days to follow; the recent values' p95
// follows within a day.
std::vector<double> scaleRegimes(unsigned seed, size_t length) {
  std::mt19937 rng(seed);
  std::exponential_distribution<double> noise(1.0);
  std::uniform_int_distribution<int> days(600, 1500);
  std::uniform_real_distribution<double> decades(0.0, 3.0);
  std::vector<double> values(length);
  double scale = 1;
  size_t t = 0;
  while (t < length) {
    for (int k = days(rng); k > 0 && t < length; --k) values[t++] = scale * (1 + noise(rng));
    scale = std::pow(10.0, decades(rng));
  }
  return values;
}

// Hours ahead on idle-with-bursts series the models disagree widely (the
// last value and the seasonal models caught in a burst, mean-like levels
// between idle and busy); their weighted median stays with the models that
// agree, nearer the conditional median than their weighted mean.
TEST(SeriesModel, WeightedMedianOfModelsLowersTheErrorHoursAhead) {
  ModelConfig meanConfig;
  meanConfig.tuning.pointMedianHorizon = 0;  // weighted mean at every horizon
  const ModelShape meanShape(meanConfig), medianShape{ModelConfig{}};
  for (int h : {12, 72}) {
    double ratio = 0;
    for (unsigned seed = 1; seed <= 3; ++seed) {
      const std::vector<double> values = idleWithBursts(seed, 8000);
      const HorizonScore mean = scoreAt(meanShape, values, h, 4000);
      const HorizonScore median = scoreAt(medianShape, values, h, 4000);
      ratio += median.mae / mean.mae / 3;
      EXPECT_GE(median.coverage, mean.coverage - 0.005) << "h=" << h << " seed " << seed;
    }
    // Measured 0.986 at 1 h, 0.998 at 6 h (on the real traces the gain is
    // larger at 6 h: there the models disagree more than on this series).
    EXPECT_LT(ratio, h == 12 ? 0.995 : 1.0) << "h=" << h;
  }
}

TEST(SeriesModel, RecentValuesP95LowersTheSixHourPinballLoss) {
  ModelConfig tracked;
  tracked.tuning.recentQuantileRate = 0;  // the share stays 0: the tracked p95 alone
  const ModelShape trackedShape(tracked), mixedShape{ModelConfig{}};
  double ratio = 0;
  for (unsigned seed = 1; seed <= 3; ++seed) {
    const std::vector<double> values = scaleRegimes(seed, 12000);
    const HorizonScore alone = scoreAt(trackedShape, values, 72, 6000);
    const HorizonScore mixed = scoreAt(mixedShape, values, 72, 6000);
    ratio += mixed.pinball / alone.pinball / 3;
    EXPECT_GT(mixed.coverage, 0.92) << seed;
    EXPECT_DOUBLE_EQ(mixed.mae, alone.mae) << seed;  // p50 is untouched
  }
  EXPECT_LT(ratio, 0.9);
}

TEST(ModelShape, ModelErrorMemoryGrowsWithTheHorizon) {
  const ModelShape shape = defaultShape();  // horizons 1, 3, 12, 36, 72
  const double base = ModelTuning{}.errorDecay;
  EXPECT_DOUBLE_EQ(shape.errorDecay(0), base);
  EXPECT_DOUBLE_EQ(shape.errorDecay(1), base);
  EXPECT_DOUBLE_EQ(shape.errorDecay(2), base * 3 / 12);
  EXPECT_DOUBLE_EQ(shape.errorDecay(4), base * 3 / 72);
}

TEST(ModelShape, RejectsBadConfiguration) {
  ModelConfig config;
  config.trackedHorizons = {0};
  EXPECT_NE(ModelShape::validate(config), "");
  config.trackedHorizons = {300};
  EXPECT_NE(ModelShape::validate(config), "");  // beyond the 288-step season
  config.trackedHorizons = {1, 12};
  config.seasonSteps = 1;
  EXPECT_NE(ModelShape::validate(config), "");
  config.seasonSteps = 288;
  EXPECT_EQ(ModelShape::validate(config), "");
  config.tuning.recentQuantileEvery = 0;
  EXPECT_NE(ModelShape::validate(config), "");
}

}  // namespace
}  // namespace Atoll::forecast
