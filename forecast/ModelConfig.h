#pragma once
// Shape and tuning shared by every series of one forecaster: the season, the
// horizons whose errors are tracked, the longest horizon forecast. Series hold
// a pointer to it, so per-series memory is only their own state.
#include <cstdint>
#include <string>
#include <vector>

namespace Atoll::forecast {

struct ModelTuning {
  double errorDecay = 0.03;           // EW weight of each new out-of-sample error (model choice)...
  int errorDecayHorizon = 3;          // ...up to this horizon; beyond, it shrinks as this / h:
                                      // errors h steps ahead overlap over h steps, so a window
                                      // of as many independent errors must be h times longer
  double scaleDecay = 0.01;           // EW weight for the naive one-step scale (MASE denominator)
  double volatilityDecay = 0.1;       // EW weight of the recent one-step change (band scaling)
  double volatilityMix = 0.5;         // share of the recent (vs long-run) change in the band scale
  double quantileStep = 0.1;          // p95/p99 step per miss or hit, in error scales, up to...
  int quantileStepHorizon = 12;       // ...this horizon; beyond, it shrinks as (this / h)^0.4
                                      // (a miss is seen h steps late: long feedback, small steps)
  int relativeBandMaxHorizon = 12;    // up to this horizon the second error tracker works
                                      // relative to the forecast level (else in series units)
  double trackerBlendPower = 16.0;    // the two trackers' offsets are blended by weights
                                      // (running pinball loss)^-this; 0 picks the better one
  double quantileScaleDecay = 0.010;  // EW weight of the (spike-clipped) normalised error scale
  double coverageDecay = 0.01;        // EW weight of the exposed p95 coverage
  double fastMedianRate = 0.15;       // gain of the recent robust level
  double slowLevelRate = 0.01;        // gain of the long-run robust level (mean reversion)
  double robustClip = 0.3;            // robust levels clip errors at this many mean deviations
  double dampingPhi = 0.9;            // trend damping of the Holt models
  double trendBeta = 0.02;            // trend gain of the Holt models
  double seasonGamma = 0.2;           // seasonal gain (one update per phase per season)
  double clipSigmas = 4.0;            // errors beyond this many scales are clipped (spikes)
  double weightPower = 4.0;           // band centre weight = error^-power...
  int stackingMaxHorizon = 3;         // ...times, up to this horizon, weights learned online
  double stackingRate = 0.05;         // learning rate of those weights (exponentiated gradient)
  double stackingShare = 0.01;        // fixed share toward equal weights per step
  double pointWeightPower = 16.0;     // p50 weight = error^-this (see SeriesModel) before...
  int pointMedianHorizon = 4;         // ...this horizon; from it on, p50 is the weighted median
                                      // of the models' forecasts (0: never), with weights...
  double medianPointWeightPower = 8.0;  // ...error^-this
  int recentQuantileEvery = 36;         // steps between refreshes of the recent p95 of values
  double recentQuantileRate = 0.04;     // learning rate of its share in the issued p95
  bool pointSeasonMedian = true;        // p50 also weighs the median of the last season
};

struct ModelConfig {
  int seasonSteps = 288;  // daily season at 5-min steps; 0 disables
  std::vector<int> trackedHorizons{1, 3, 12, 36, 72};
  int maxHorizon = 72;  // longest horizon forecast, in steps
  ModelTuning tuning;
};

// The validated, derived form every SeriesModel shares.
class ModelShape {
 public:
  static constexpr int kMaxRecentQuantileWindow = 2048;
  // Sorts and de-duplicates horizons, extends maxHorizon to cover them.
  // Returns an empty string when valid, else what is wrong.
  static std::string validate(const ModelConfig& config);
  explicit ModelShape(const ModelConfig& config);

  int season() const { return season_; }
  int historyLength() const { return historyLength_; }
  int ringLength() const { return ringLength_; }
  int maxHorizon() const { return maxHorizon_; }
  const std::vector<int>& horizons() const { return horizons_; }
  int trackedCount() const { return static_cast<int>(horizons_.size()); }
  int trackedRingTotal() const { return trackedRingTotal_; }
  // Tracked horizons (the first ones) whose combination weights are stacked.
  int stackedCount() const { return stackedCount_; }
  // Slots of the ring of recent-value quantiles (one per refresh, enough to
  // reach back maxHorizon steps).
  int recentQuantileSlots() const { return recentQuantileSlots_; }
  // Values the recent quantile is taken over (the season, else the history).
  int recentQuantileWindow() const { return recentQuantileWindow_; }
  int trackedRingOffset(int j) const { return trackedRingOffsets_[j]; }
  // sum_{i=1..h} phi^i, the damped-trend multiplier at horizon h.
  double dampSum(int h) const { return dampSums_[h]; }
  // Bracketing tracked horizons of h and the weight of the upper one.
  struct Bracket {
    int lower;
    int upper;
    double upperWeight;
  };
  const Bracket& bracket(int h) const { return brackets_[h]; }
  const ModelTuning& tuning() const { return tuning_; }
  // Quantile tracking step at tracked horizon j.
  double quantileStep(int j) const { return quantileSteps_[j]; }
  // Power of the model errors in the p50 weights at tracked horizon j.
  double pointWeightPower(int j) const { return pointWeightPowers_[j]; }
  // Whether p50 at horizon h is the weighted median (else the weighted mean)
  // of the models' forecasts.
  bool pointMedian(int h) const {
    return tuning_.pointMedianHorizon > 0 && h >= tuning_.pointMedianHorizon;
  }
  // Weight of each new model error at tracked horizon j.
  double errorDecay(int j) const { return errorDecays_[j]; }
  // Where each part of a series' float arena starts (laid out by
  // SeriesModel::arenaLayoutFor), so a series finds each with one addition.
  struct ArenaLayout {
    size_t season = 0;
    size_t rings = 0;
    size_t trackedP50 = 0;
    size_t trackedScale = 0;
    size_t modelErrors = 0;
    size_t trackedStats = 0;
    size_t mixWeights = 0;
    size_t recentShare = 0;
    size_t recentQuantiles = 0;
    size_t recentMedians = 0;
    size_t total = 0;
  };
  const ArenaLayout& arenaLayout() const { return arenaLayout_; }
  // Floats of per-series arena storage.
  size_t arenaFloats() const { return arenaLayout_.total; }

 private:
  int season_;
  int historyLength_;
  int ringLength_;
  int maxHorizon_;
  std::vector<int> horizons_;
  std::vector<int> trackedRingOffsets_;
  int trackedRingTotal_ = 0;
  int stackedCount_ = 0;
  int recentQuantileSlots_ = 0;
  int recentQuantileWindow_ = 0;
  std::vector<double> dampSums_;
  std::vector<Bracket> brackets_;
  std::vector<double> quantileSteps_;
  std::vector<double> errorDecays_;
  std::vector<double> pointWeightPowers_;
  ModelTuning tuning_;
  ArenaLayout arenaLayout_;
};

}  // namespace Atoll::forecast
