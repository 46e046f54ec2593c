#include "forecast/ModelConfig.h"

#include <algorithm>
#include <cmath>

#include "forecast/SeriesModel.h"

namespace Atoll::forecast {

std::string ModelShape::validate(const ModelConfig& config) {
  if (config.seasonSteps < 0 || config.seasonSteps == 1)
    return "season must be 0 (none) or at least 2 steps, got " + std::to_string(config.seasonSteps);
  if (config.trackedHorizons.empty()) return "at least one horizon must be tracked";
  for (int h : config.trackedHorizons) {
    if (h < 1 || h > 10000)
      return "horizon must be between 1 and 10000 steps, got " + std::to_string(h);
    if (config.seasonSteps > 0 && h > config.seasonSteps)
      return "horizon " + std::to_string(h) + " exceeds the season of " +
             std::to_string(config.seasonSteps) + " steps";
  }
  if (config.tuning.recentQuantileEvery < 1)
    return "recent quantile refresh must be at least 1 step, got " +
           std::to_string(config.tuning.recentQuantileEvery);
  if (config.maxHorizon < 1 || (config.seasonSteps > 0 && config.maxHorizon > config.seasonSteps))
    return "longest horizon must be between 1 and the season length, got " +
           std::to_string(config.maxHorizon);
  return {};
}

ModelShape::ModelShape(const ModelConfig& config) : tuning_(config.tuning) {
  horizons_ = config.trackedHorizons;
  std::sort(horizons_.begin(), horizons_.end());
  horizons_.erase(std::unique(horizons_.begin(), horizons_.end()), horizons_.end());
  maxHorizon_ = std::max(config.maxHorizon, horizons_.back());
  season_ = config.seasonSteps;
  ringLength_ = maxHorizon_ + 1;
  historyLength_ = std::max({season_, ringLength_, 12});
  for (int h : horizons_) {
    trackedRingOffsets_.push_back(trackedRingTotal_);
    trackedRingTotal_ += h;
  }
  dampSums_.assign(maxHorizon_ + 1, 0.0);
  double power = 1.0;
  for (int h = 1; h <= maxHorizon_; ++h) {
    power *= tuning_.dampingPhi;
    dampSums_[h] = dampSums_[h - 1] + power;
  }
  brackets_.resize(maxHorizon_ + 1);
  for (int h = 0; h <= maxHorizon_; ++h) {
    int upper = 0;
    while (upper < trackedCount() - 1 && horizons_[upper] < h) ++upper;
    int lower = upper;
    if (horizons_[upper] > h && upper > 0) lower = upper - 1;
    double weight = 1.0;
    if (lower != upper && horizons_[upper] != horizons_[lower])
      weight = double(h - horizons_[lower]) / double(horizons_[upper] - horizons_[lower]);
    if (horizons_[upper] < h || horizons_[upper] == h) lower = upper, weight = 1.0;
    brackets_[h] = {lower, upper, weight};
  }
  for (int h : horizons_)
    quantileSteps_.push_back(
        tuning_.quantileStep *
        std::pow(std::min(1.0, double(tuning_.quantileStepHorizon) / double(h)), 0.4));
  for (int h : horizons_)
    errorDecays_.push_back(tuning_.errorDecay *
                           std::min(1.0, double(tuning_.errorDecayHorizon) / double(h)));
  for (int h : horizons_)
    if (h <= tuning_.stackingMaxHorizon) ++stackedCount_;
  for (int h : horizons_)
    pointWeightPowers_.push_back(pointMedian(h) ? tuning_.medianPointWeightPower
                                                : tuning_.pointWeightPower);
  recentQuantileSlots_ =
      (maxHorizon_ + tuning_.recentQuantileEvery - 1) / tuning_.recentQuantileEvery + 1;
  // Capped so the selection runs on a fixed stack buffer.
  recentQuantileWindow_ = std::min({season_ > 0 ? season_ : historyLength_, historyLength_,
                                    ModelShape::kMaxRecentQuantileWindow});
  arenaLayout_ = SeriesModel::arenaLayoutFor(*this);
}

}  // namespace Atoll::forecast
