#pragma once
// The forecasting state of one series at the model's step: a bank of small
// online models (last value, recent mean, recent and long-run robust levels,
// damped Holt, damped additive Holt-Winters on the season, seasonal naive,
// and for p50 only the median of the last season's values),
// each scored by its own out-of-sample error at every tracked horizon. Two
// combinations weighted by those errors are formed per horizon (the error
// memory grows with the horizon, and at short horizons the weights are
// further multiplied by weights learned online from which side of the blend
// the actuals fall: stacking for the absolute loss): p50 with sharp weights
// (error^-16: the models' errors are strongly correlated, so a soft blend
// mostly adds the weaker models' noise; from 20 min on the weighted median
// of the forecasts with weights error^-8, which a model far from the others
// cannot drag along), and a smoother centre (error^-4)
// that anchors the band, whose errors vary less from step to step. The
// upper quantiles are the centre's own recent error quantiles at that
// horizon, in units of the series' recent volatility (so the band widens in a
// burst and narrows when calm), tracked adaptively: the quantile rises on a
// miss and falls on a hit, so coverage holds whatever the error distribution.
// The issued p95 mixes that with the p95 of the series' own values over the
// last season (refreshed hourly), by a share learned per horizon from the p95
// pinball loss (online gradient): hours ahead, on bursty series, where the
// series has recently been is a better upper bound than today's level plus
// an error quantile.
// Every update is O(1) in the history length and allocates nothing; the whole
// path is computed only when asked (forecast/profile). Memory is one float
// arena sized by the shared ModelShape; nothing is refitted offline.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "forecast/ModelConfig.h"

namespace Atoll::forecast {

enum class ModelKind : uint8_t {
  LastValue,
  RecentMean,
  RecentMedian,  // robust (Huber) level with a fast gain
  SlowLevel,     // robust (Huber) level with a slow gain: the long-run level
  DampedTrend,
  SeasonalHoltWinters,
  SeasonalNaive,
  // Point-only (in p50, not in the band's centre nor the stacking): the
  // MAE-optimal forecast of a noisy level is its conditional median, and
  // hours ahead on spiky or idle-then-busy series the median of the last
  // season's values is closer to it than any smoothed level. Refreshed with
  // the recent p95, over the same values.
  SeasonMedian,
};
inline constexpr int kModelCount = 8;
// The models the band's centre blends and the stacking learns weights for
// (the first ones).
inline constexpr int kBandModelCount = 7;
const char* modelName(ModelKind kind);

struct Quantiles {
  double p50 = 0;
  double p95 = 0;
  double p99 = 0;
};

// The running accuracy of the combined forecast at one tracked horizon.
struct HorizonAccuracy {
  int horizon = 0;
  double mase = 0;        // EW mean |error| / EW one-step naive |change|
  double coverage95 = 0;  // EW fraction of actuals at or below the p95 issued h steps before
  double p95Offset = 0;   // current p95 - p50 offset (at the current volatility)
  uint64_t errors = 0;    // how many errors were scored
  ModelKind bestModel = ModelKind::LastValue;
};

class SeriesModel {
 public:
  explicit SeriesModel(const ModelShape& shape);
  SeriesModel(const SeriesModel& other);
  SeriesModel& operator=(const SeriesModel&) = delete;
  SeriesModel(SeriesModel&&) noexcept = default;

  // One step's value. A filled step (a gap bridged with the last value)
  // advances the models and the seasonal phase but scores no error.
  void update(double value, bool filled = false);
  void reset();

  uint64_t steps() const { return steps_; }
  // Forecast of the step h steps after the last update (1 <= h <= maxHorizon).
  Quantiles forecast(int h) const;
  // out[k] = forecast(k + 1), cheaper than calling forecast per step.
  void profile(std::span<Quantiles> out) const;
  HorizonAccuracy accuracy(int trackedIndex) const;
  const ModelShape& shape() const { return *shape_; }

  // Heap and inline bytes this series holds.
  size_t memoryBytes() const;
  static ModelShape::ArenaLayout arenaLayoutFor(const ModelShape& shape);

 private:
  bool available(int model, uint64_t origin) const;
  // Normalised combination weights at tracked horizon j (sum 1; all zero when
  // no model has an error yet).
  // `models`: kBandModelCount for the band's centre, kModelCount for p50.
  void trackedWeights(int j, uint64_t origin, double* weights, double power, int models) const;
  // The band's centre and the p50 weights at tracked horizon j together.
  void trackedWeightPair(int j, uint64_t origin, double* band, double* point) const;
  void flooredErrors(int j, uint64_t origin, double* errors) const;
  void liveForecasts(int h, double* forecasts) const;
  // liveForecasts in two parts: the models whose forecast is the same at
  // every horizon, then those of horizon h (`seasonal`: the seasonal models
  // are available).
  void levelForecasts(double* forecasts) const;
  void horizonForecasts(int h, bool seasonal, double* forecasts) const;
  // The band's offsets at tracked horizon j, less the level-relative unit.
  struct BandOffsets {
    double q95Scaled = 0, q99Scaled = 0;  // volatility-relative tracker's part
    double q95Raw = 0, q99Raw = 0;        // the other's, per unit of levelUnit()
    bool seen = false;                    // errors were scored at j
    bool relative = false;                // levelUnit() is relative to the level
  };
  BandOffsets bandOffsets(int j, double band) const;
  void quantilesAt(int h, double centre, double point, const BandOffsets& lower,
                   const BandOffsets& upper, double recent, Quantiles& out) const;
  float seasonalAt(int phase) const { return season()[phase]; }
  double bandScale() const;  // recent over long-run volatility, clamped
  double levelUnit(int j, double p50) const;
  double conditionalShare(const float* stats) const;
  void scoreErrors(double value);
  void trackQuantiles(double error, double step, float* q, float& loss, double unit) const;
  void advanceModels(double value);
  void recordOrigin();
  void issueTracked();

  float* hist() const { return arena_.get(); }
  float* season() const;
  float* ring(int slot) const;
  float* trackedP50(int j) const;
  float* trackedScale(int j) const;    // band scale (volatility) at each origin
  float* modelError(int model) const;  // [trackedCount]
  float* trackedStats(int j) const;    // [kStatCount]
  float* mixWeights(int j) const;      // [kBandModelCount] learned combination weights (stacked j)
  float* recentShare() const;          // [trackedCount] share of the recent p95 in the issued p95
  float* recentQuantiles() const;      // [recentQuantileSlots] p95 of the recent values
  float* recentMedians() const;        // [recentQuantileSlots] median of the recent values
  void refreshRecentQuantile();
  int recentSlotAfter(uint64_t stepsSoFar) const;
  double recentQuantileAfter(uint64_t stepsSoFar) const;
  double recentMedianAfter(uint64_t stepsSoFar) const;
  void learnMix(int j, double value, const double* stored, int models);

  const ModelShape* shape_;
  std::unique_ptr<float[]> arena_;
  std::unique_ptr<uint16_t[]> trackedPos_;  // steps_ % horizon, per tracked horizon
  uint64_t steps_ = 0;
  // Cursors: steps_ modulo the history, ring and season lengths.
  int histPos_ = 0, ringPos_ = 0, seasonPos_ = 0;
  double last_ = 0;
  double naiveScale_ = -1;  // < 0: not known yet
  double volatility_ = 0;   // recent EW |one-step change|
  double recentSum_ = 0;    // sum of the last kRecentWindow values
  double fastLevel_ = 0, fastSpread_ = -1;
  double slowLevel_ = 0, slowSpread_ = -1;
  double holtLevel_ = 0, holtTrend_ = 0, holtSignal_ = 0, holtAbs_ = 0;
  double hwLevel_ = 0, hwTrend_ = 0, hwSignal_ = 0, hwAbs_ = 0;
};

}  // namespace Atoll::forecast
