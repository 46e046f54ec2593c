#include "forecast/SeriesModel.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>

namespace Atoll::forecast {

namespace {

// Rings of per-origin model state, one float per origin, ringLength long.
enum RingSlot : int {
  kRingMean,
  kRingFastLevel,
  kRingSlowLevel,
  kRingHoltLevel,
  kRingHoltTrend,
  kRingHwLevel,
  kRingHwTrend,
  kRingCount
};

// Per tracked horizon statistics of the combined forecast. The error
// quantiles are tracked twice: in units of the band scale (conditional on the
// current volatility, see bandScale()) and, in the *Raw entries, in units of
// levelUnit() (relative to the forecast level up to 1 h, the series' own units
// beyond); each keeps its running p95 pinball loss in the series' units and
// the one with the lower loss gets most of the weight (conditionalShare()),
// since recent volatility predicts the next minutes of error better than the
// next hours.
enum TrackedStat : int {
  kQ95,
  kQ99,
  kErrorScale,
  kQ95Raw,
  kQ99Raw,
  kErrorScaleRaw,
  kLoss,
  kLossRaw,
  kMae,
  kCoverage,
  kCount,
  kStatCount
};

constexpr int kRecentWindow = 12;
constexpr float kNone = -1.0f;  // forecasts and errors are never negative
// The band follows the recent volatility within these factors of the
// long-run one, so one burst cannot blow the band up without bound.
constexpr double kMinBandScale = 0.25;
constexpr double kMaxBandScale = 4.0;
// profile() keeps the weights of this many tracked horizons on the stack.
constexpr int kStackTracked = 16;

double ew(double previous, double sample, double weight) {
  return previous < 0 ? sample : previous + weight * (sample - previous);
}

// Index `back` steps before `pos` in a ring of `length` (back <= length).
int wrapBack(int pos, int back, int length) {
  const int at = pos - back;
  return at < 0 ? at + length : at;
}

// Median of values[0, count) (the mean of the two middle ones when count is
// even); reorders the values.
double medianOf(float* values, int count) {
  if (count <= 0) return 0;
  const int middle = count / 2;
  std::nth_element(values, values + middle, values + count);
  const double upper = values[middle];
  if (count % 2 == 1) return upper;
  return 0.5 * (upper + *std::max_element(values, values + middle));
}

// Copies the last `count` values of a ring ending before `pos` to `out`.
void copyLast(const float* ring, int pos, int count, int length, float* out) {
  const int start = wrapBack(pos, count, length);
  if (start < pos || count == 0) {
    std::copy(ring + start, ring + pos, out);
  } else {
    std::copy(ring + start, ring + length, out);
    std::copy(ring, ring + pos, out + (length - start));
  }
}

// Huber-type robust level: moves by the error, clipped to the series' own
// mean deviation, so spikes barely move it (close to a running median) while
// a persistent shift is followed within a few multiples of 1/rate steps.
void robustStep(double value, double rate, double clip, double& level, double& spread) {
  const double error = value - level;
  const double absError = std::fabs(error);
  spread = ew(spread, absError, rate);
  level += rate * std::clamp(error, -clip * spread, clip * spread);
}

}  // namespace

// One error (in the tracker's units) moves q95 and q99 by a small step on
// each miss or hit (adaptive quantile tracking), in units of a slow,
// spike-clipped error scale, so the miss rate settles at 5 % (1 %) whatever
// the error distribution and one burst does not widen every later interval.
// `loss` follows the p95 pinball loss of the tracker in the series' units
// (`unit` converts the tracker's units back), so trackers compare fairly.
void SeriesModel::trackQuantiles(double error, double step, float* q, float& loss,
                                 double unit) const {
  const ModelTuning& tuning = shape_->tuning();
  float& q95 = q[0];
  float& q99 = q[1];
  float& scale = q[2];
  const double miss = error - q95;
  const double pinball = miss >= 0 ? 0.95 * miss : -0.05 * miss;
  loss = static_cast<float>(loss + tuning.coverageDecay * (pinball * unit - loss));
  const double absError = std::fabs(error);
  const double clipped = scale > 0 ? std::min(absError, tuning.clipSigmas * scale) : absError;
  scale = static_cast<float>(ew(scale, clipped, tuning.quantileScaleDecay));
  const double move = step * scale;
  q95 += static_cast<float>(move * ((miss > 0 ? 1.0 : 0.0) - 0.05));
  q99 += static_cast<float>(move * ((error > q99 ? 1.0 : 0.0) - 0.01));
}

// The share of the volatility-relative tracker in the band. The two
// trackers' offsets are blended by weights (running pinball loss)^-power:
// close to picking the better one, but when their losses are close (often on
// steady series) the band no longer jumps between two offsets each time the
// losses cross, which only added noise to the issued p95.
double SeriesModel::conditionalShare(const float* stats) const {
  const double loss = stats[kLoss], lossRaw = stats[kLossRaw];
  const double power = shape_->tuning().trackerBlendPower;
  if (!(power > 0) || !(loss > 0) || !(lossRaw > 0)) return loss <= lossRaw ? 1.0 : 0.0;
  const double r = loss / lossRaw;
  double ratio;
  if (power == 16.0) {
    const double r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
    ratio = r8 * r8;
  } else {
    ratio = std::pow(r, power);
  }
  return 1.0 / (1.0 + ratio);  // ratio = inf (raw far better) gives 0
}

const char* modelName(ModelKind kind) {
  switch (kind) {
    case ModelKind::LastValue:
      return "last-value";
    case ModelKind::RecentMean:
      return "recent-mean";
    case ModelKind::RecentMedian:
      return "recent-median";
    case ModelKind::SlowLevel:
      return "slow-level";
    case ModelKind::DampedTrend:
      return "damped-trend";
    case ModelKind::SeasonalHoltWinters:
      return "seasonal-holt-winters";
    case ModelKind::SeasonalNaive:
      return "seasonal-naive";
    case ModelKind::SeasonMedian:
      return "season-median";
  }
  return "unknown";
}

size_t SeriesModel::arenaFloatsFor(const ModelShape& shape) {
  return size_t(shape.historyLength()) + size_t(shape.season()) +
         size_t(kRingCount) * shape.ringLength() + 2 * size_t(shape.trackedRingTotal()) +
         size_t(kModelCount) * shape.trackedCount() + size_t(kStatCount) * shape.trackedCount() +
         size_t(kBandModelCount) * shape.stackedCount() + size_t(shape.trackedCount()) +
         2 * size_t(shape.recentQuantileSlots());
}

SeriesModel::SeriesModel(const ModelShape& shape)
    : shape_(&shape),
      arena_(std::make_unique<float[]>(shape.arenaFloats())),
      trackedPos_(std::make_unique<uint16_t[]>(shape.trackedCount())) {
  reset();
}

SeriesModel::SeriesModel(const SeriesModel& other)
    : shape_(other.shape_),
      arena_(std::make_unique<float[]>(other.shape_->arenaFloats())),
      trackedPos_(std::make_unique<uint16_t[]>(other.shape_->trackedCount())),
      steps_(other.steps_),
      histPos_(other.histPos_),
      ringPos_(other.ringPos_),
      seasonPos_(other.seasonPos_),
      last_(other.last_),
      naiveScale_(other.naiveScale_),
      volatility_(other.volatility_),
      recentSum_(other.recentSum_),
      fastLevel_(other.fastLevel_),
      fastSpread_(other.fastSpread_),
      slowLevel_(other.slowLevel_),
      slowSpread_(other.slowSpread_),
      holtLevel_(other.holtLevel_),
      holtTrend_(other.holtTrend_),
      holtSignal_(other.holtSignal_),
      holtAbs_(other.holtAbs_),
      hwLevel_(other.hwLevel_),
      hwTrend_(other.hwTrend_),
      hwSignal_(other.hwSignal_),
      hwAbs_(other.hwAbs_) {
  std::memcpy(arena_.get(), other.arena_.get(), shape_->arenaFloats() * sizeof(float));
  std::memcpy(trackedPos_.get(), other.trackedPos_.get(),
              size_t(shape_->trackedCount()) * sizeof(uint16_t));
}

float* SeriesModel::season() const {
  return arena_.get() + shape_->historyLength();
}
float* SeriesModel::ring(int slot) const {
  return season() + shape_->season() + size_t(slot) * shape_->ringLength();
}
float* SeriesModel::trackedP50(int j) const {
  return ring(kRingCount) + shape_->trackedRingOffset(j);
}
float* SeriesModel::trackedScale(int j) const {
  return ring(kRingCount) + shape_->trackedRingTotal() + shape_->trackedRingOffset(j);
}
float* SeriesModel::modelError(int model) const {
  return ring(kRingCount) + 2 * shape_->trackedRingTotal() + size_t(model) * shape_->trackedCount();
}
float* SeriesModel::trackedStats(int j) const {
  return modelError(kModelCount) + size_t(j) * kStatCount;
}
float* SeriesModel::mixWeights(int j) const {
  return trackedStats(shape_->trackedCount()) + size_t(j) * kBandModelCount;
}
float* SeriesModel::recentShare() const {
  return mixWeights(shape_->stackedCount());
}
float* SeriesModel::recentQuantiles() const {
  return recentShare() + shape_->trackedCount();
}
float* SeriesModel::recentMedians() const {
  return recentQuantiles() + shape_->recentQuantileSlots();
}

void SeriesModel::reset() {
  steps_ = 0;
  histPos_ = ringPos_ = seasonPos_ = 0;
  last_ = 0;
  naiveScale_ = -1;
  volatility_ = recentSum_ = 0;
  fastLevel_ = slowLevel_ = 0;
  fastSpread_ = slowSpread_ = -1;
  holtLevel_ = holtTrend_ = holtSignal_ = holtAbs_ = 0;
  hwLevel_ = hwTrend_ = hwSignal_ = hwAbs_ = 0;
  std::fill_n(arena_.get(), shape_->arenaFloats(), 0.0f);
  std::fill_n(trackedPos_.get(), shape_->trackedCount(), uint16_t{0});
  std::fill_n(trackedP50(0), shape_->trackedRingTotal(), kNone);
  std::fill_n(modelError(0), size_t(kModelCount) * shape_->trackedCount(), kNone);
  std::fill_n(mixWeights(0), size_t(kBandModelCount) * shape_->stackedCount(),
              static_cast<float>(1.0 / kBandModelCount));
  std::fill_n(recentQuantiles(), 2 * size_t(shape_->recentQuantileSlots()), kNone);
  for (int j = 0; j < shape_->trackedCount(); ++j) {
    float* stats = trackedStats(j);
    stats[kErrorScale] = stats[kErrorScaleRaw] = kNone;
    stats[kMae] = kNone;
    stats[kCoverage] = kNone;
  }
}

size_t SeriesModel::memoryBytes() const {
  return sizeof(*this) + shape_->arenaFloats() * sizeof(float) +
         size_t(shape_->trackedCount()) * sizeof(uint16_t);
}

// A model can forecast from an origin once it has the history it needs.
bool SeriesModel::available(int model, uint64_t origin) const {
  const auto season = uint64_t(shape_->season());
  switch (static_cast<ModelKind>(model)) {
    case ModelKind::SeasonalHoltWinters:
    case ModelKind::SeasonalNaive:
      return season > 0 && origin + 1 >= season;
    case ModelKind::SeasonMedian:
      return origin + 1 >= uint64_t(shape_->tuning().recentQuantileEvery);
    default:
      return true;
  }
}

// How volatile the series is now relative to its long run: the band is the
// tracked error quantile times this factor, so the upper quantile is
// conditional on the current regime (calm or bursty).
double SeriesModel::bandScale() const {
  const double longRun = std::max(naiveScale_, 0.0);
  const double mix = shape_->tuning().volatilityMix;
  const double recent = mix * volatility_ + (1 - mix) * longRun;
  if (!(longRun > 0)) return recent > 0 ? kMaxBandScale : 1.0;
  return std::clamp(recent / longRun, kMinBandScale, kMaxBandScale);
}

// The unit of the level-relative error tracker at tracked horizon j: the
// forecast itself plus the series' typical one-step change (so a forecast of
// zero still has a band). Errors of idle-then-busy and bursty series grow with
// their level, so up to relativeBandMaxHorizon the second tracker works in
// this unit; beyond it the level at the origin says little about the error
// and the tracker stays in the series' units (unit 1).
double SeriesModel::levelUnit(int j, double p50) const {
  if (shape_->horizons()[j] > shape_->tuning().relativeBandMaxHorizon) return 1.0;
  return p50 + std::max(naiveScale_, 1e-9);
}

void SeriesModel::trackedWeights(int j, uint64_t origin, double* weights, double power,
                                 int models) const {
  const double floor = 1e-9 + 1e-3 * std::max(naiveScale_, 0.0);
  const bool stacked = j < shape_->stackedCount();
  const float* mix = stacked ? mixWeights(j) : nullptr;
  if (!shape_->tuning().pointSeasonMedian) models = std::min(models, kBandModelCount);
  const bool seasonal = available(int(ModelKind::SeasonalNaive), origin);
  const bool seasonMedian = available(int(ModelKind::SeasonMedian), origin);
  // Errors first (0: no weight), then weights relative to the least error, so
  // a high power neither overflows nor underflows whatever the series' units.
  const float* errors = modelError(0) + j;  // model m's at errors[m * trackedCount]
  const int stride = shape_->trackedCount();
  double least = 0;
  for (int m = 0; m < kModelCount; ++m) {
    const float error = errors[m * stride];
    const bool usable = m < models && error >= 0;
    weights[m] = usable ? error + floor : 0.0;
  }
  if (!seasonal)
    weights[int(ModelKind::SeasonalHoltWinters)] = weights[int(ModelKind::SeasonalNaive)] = 0;
  if (!seasonMedian) weights[int(ModelKind::SeasonMedian)] = 0;
  for (int m = 0; m < models; ++m)
    if (weights[m] > 0 && (least == 0 || weights[m] < least)) least = weights[m];
  double sum = 0;
  for (int m = 0; m < models; ++m) {
    if (weights[m] == 0) continue;
    const double r = least / weights[m];  // <= 1
    const double r2 = r * r;
    const double r4 = r2 * r2;
    weights[m] = power == 4.0    ? r4
                 : power == 8.0  ? r4 * r4
                 : power == 16.0 ? (r4 * r4) * (r4 * r4)
                 : power == 2.0  ? r2
                                 : std::pow(r, power);
    // Point-only models are not stacked: they count as an average one.
    if (stacked) weights[m] *= m < kBandModelCount ? mix[m] : 1.0 / kBandModelCount;
    sum += weights[m];
  }
  const double scale = sum > 0 ? 1.0 / sum : 0.0;
  for (int m = 0; m < kModelCount; ++m) weights[m] *= scale;
}

// Forecasts of every model h steps after the last update (unavailable: 0).
void SeriesModel::liveForecasts(int h, double* forecasts) const {
  const uint64_t origin = steps_ - 1;
  const int window = static_cast<int>(std::min<uint64_t>(steps_, kRecentWindow));
  forecasts[int(ModelKind::LastValue)] = last_;
  forecasts[int(ModelKind::RecentMean)] = recentSum_ / window;
  forecasts[int(ModelKind::SeasonMedian)] = std::max(0.0, recentMedianAfter(steps_));
  forecasts[int(ModelKind::RecentMedian)] = fastLevel_;
  forecasts[int(ModelKind::SlowLevel)] = slowLevel_;
  forecasts[int(ModelKind::DampedTrend)] = holtLevel_ + shape_->dampSum(h) * holtTrend_;
  const int season = shape_->season();
  if (available(int(ModelKind::SeasonalNaive), origin)) {
    // Target origin + h; its phase is seasonPos_ + h - 1, its value one
    // season earlier sits h - 1 - season after the next history slot.
    int phase = seasonPos_ + h - 1;
    if (phase >= season) phase -= season;
    forecasts[int(ModelKind::SeasonalHoltWinters)] =
        hwLevel_ + shape_->dampSum(h) * hwTrend_ + seasonalAt(phase);
    int at = histPos_ + h - 1 - season;
    if (at < 0) at += shape_->historyLength();
    forecasts[int(ModelKind::SeasonalNaive)] = hist()[at];
  } else {
    forecasts[int(ModelKind::SeasonalHoltWinters)] = 0;
    forecasts[int(ModelKind::SeasonalNaive)] = 0;
  }
}

namespace {

struct Blend {
  const double* lower;  // normalised weights at the lower tracked horizon, or null
  const double* upper;
  double upperWeight;
};

// The models' forecasts blended with the bracketing horizons' weights;
// before any error is known the recent mean is the safest single guess.
double blended(const Blend& blend, const double* forecasts) {
  if (blend.lower == nullptr && blend.upper == nullptr)
    return forecasts[int(ModelKind::RecentMean)];
  const double* a = blend.lower ? blend.lower : blend.upper;
  const double* b = blend.upper ? blend.upper : blend.lower;
  const double u = blend.lower && blend.upper ? blend.upperWeight : 0.0;
  double p50 = 0;
  for (int m = 0; m < kModelCount; ++m) p50 += (a[m] + u * (b[m] - a[m])) * forecasts[m];
  return p50;
}

// The weighted median of the models' forecasts (the lowest forecast at which
// the cumulative weight reaches half), for weights[0, kModelCount) summing
// to `total` > 0. `order` holds the models in the order of an earlier call's
// forecasts (any permutation will do): along a path the forecasts change
// little from one step to the next, so the insertion sort mostly only checks
// that the order still holds.
double weightedMedian(const double* weights, const double* forecasts, double total, int* order) {
  const double half = 0.5 * total;
  // Often one model holds most of the weight: it is the median, no sort.
  for (int m = 0; m < kModelCount; ++m)
    if (weights[m] > half) return forecasts[m];
  for (int i = 1; i < kModelCount; ++i)
    for (int k = i; k > 0 && forecasts[order[k]] < forecasts[order[k - 1]]; --k)
      std::swap(order[k], order[k - 1]);
  double cumulative = 0;
  for (int i = 0; i < kModelCount; ++i) {
    const int m = order[i];
    if (!(weights[m] > 0)) continue;
    cumulative += weights[m];
    if (cumulative >= half) return forecasts[m];
  }
  // Rounding: the last weighted model.
  for (int i = kModelCount - 1; i >= 0; --i)
    if (weights[order[i]] > 0) return forecasts[order[i]];
  return 0.0;
}

struct ModelOrder {
  int order[kModelCount] = {0, 1, 2, 3, 4, 5, 6, 7};
  static_assert(kModelCount == 8);
};

// p50 hours ahead: the weighted median rather than the weighted mean of the
// models' forecasts. When the models disagree widely (a seasonal model
// replaying yesterday's burst, the last value caught in a spike, a level
// between idle and busy), the mean is pulled toward whichever is far off by
// its share of the weight; the median stays with the models that agree,
// closer to the conditional median the absolute error rewards.
double pointBlended(const Blend& blend, const double* forecasts, bool median, ModelOrder& order) {
  if (!median || (blend.lower == nullptr && blend.upper == nullptr))
    return blended(blend, forecasts);
  const double* a = blend.lower ? blend.lower : blend.upper;
  const double* b = blend.upper ? blend.upper : blend.lower;
  const double u = blend.lower && blend.upper ? blend.upperWeight : 0.0;
  double weights[kModelCount];
  double total = 0;
  for (int m = 0; m < kModelCount; ++m) total += weights[m] = a[m] + u * (b[m] - a[m]);
  return total > 0 ? weightedMedian(weights, forecasts, total, order.order)
                   : blended(blend, forecasts);
}

bool anyWeight(const double* weights) {
  for (int m = 0; m < kModelCount; ++m)
    if (weights[m] > 0) return true;
  return false;
}

}  // namespace

Quantiles SeriesModel::forecast(int h) const {
  Quantiles out;
  if (steps_ == 0 || h < 1 || h > shape_->maxHorizon()) return out;
  const ModelShape::Bracket& bracket = shape_->bracket(h);
  const uint64_t origin = steps_ - 1;
  double lower[kModelCount], upper[kModelCount], forecasts[kModelCount];
  const ModelTuning& tuning = shape_->tuning();
  liveForecasts(h, forecasts);
  trackedWeights(bracket.lower, origin, lower, tuning.weightPower, kBandModelCount);
  trackedWeights(bracket.upper, origin, upper, tuning.weightPower, kBandModelCount);
  const Blend centre{anyWeight(lower) ? lower : nullptr, anyWeight(upper) ? upper : nullptr,
                     bracket.upperWeight};
  const double centreValue = blended(centre, forecasts);
  trackedWeights(bracket.lower, origin, lower, shape_->pointWeightPower(bracket.lower),
                 kModelCount);
  trackedWeights(bracket.upper, origin, upper, shape_->pointWeightPower(bracket.upper),
                 kModelCount);
  const Blend point{anyWeight(lower) ? lower : nullptr, anyWeight(upper) ? upper : nullptr,
                    bracket.upperWeight};
  ModelOrder order;
  quantilesAt(h, centreValue, pointBlended(point, forecasts, shape_->pointMedian(h), order),
              bandScale(), out);
  return out;
}

// p50 is the point blend; the upper quantiles are offsets from the centre
// blend, whose errors they track.
void SeriesModel::quantilesAt(int h, double centre, double point, double band,
                              Quantiles& out) const {
  const ModelShape::Bracket& bracket = shape_->bracket(h);
  const float* lowerStats = trackedStats(bracket.lower);
  const float* upperStats = trackedStats(bracket.upper);
  const double p50 = std::max(0.0, centre);
  // Offsets in the series' units, the two error models blended by their losses.
  auto offsets = [this, band, p50](int j, double& q95, double& q99) {
    const float* stats = trackedStats(j);
    const double share = conditionalShare(stats);
    const double unit = levelUnit(j, p50);
    q95 = share * stats[kQ95] * band + (1 - share) * stats[kQ95Raw] * unit;
    q99 = share * stats[kQ99] * band + (1 - share) * stats[kQ99Raw] * unit;
  };
  double q95, q99;
  if (upperStats[kCount] > 0 && lowerStats[kCount] > 0) {
    double lower95, lower99, upper95, upper99;
    offsets(bracket.lower, lower95, lower99);
    offsets(bracket.upper, upper95, upper99);
    const double u = bracket.upperWeight;
    q95 = lower95 + u * (upper95 - lower95);
    q99 = lower99 + u * (upper99 - lower99);
  } else if (upperStats[kCount] > 0 || lowerStats[kCount] > 0) {
    offsets(upperStats[kCount] > 0 ? bracket.upper : bracket.lower, q95, q99);
  } else {
    // No error seen yet at this horizon: a provisional spread from the
    // series' own step-to-step change, replaced as soon as errors arrive.
    const double spread = std::max(naiveScale_, 0.0) * std::sqrt(double(h));
    q95 = 2.0 * spread;
    q99 = 3.0 * spread;
  }
  // The issued p95 mixes the tracked one with the recent values' p95, by
  // the share learned at the bracketing horizons.
  const double recent = recentQuantileAfter(steps_);
  if (recent >= 0) {
    const float* share = recentShare();
    const double u =
        share[bracket.lower] + bracket.upperWeight * (share[bracket.upper] - share[bracket.lower]);
    q95 += u * (recent - (p50 + q95));
  }
  out.p50 = std::max(0.0, point);
  out.p95 = std::max({out.p50, p50, p50 + q95});
  out.p99 = std::max(out.p95, p50 + q99);
}

void SeriesModel::profile(std::span<Quantiles> out) const {
  const int steps = std::min<int>(static_cast<int>(out.size()), shape_->maxHorizon());
  const int tracked = shape_->trackedCount();
  if (steps_ == 0 || tracked > kStackTracked) {
    for (int k = 0; k < steps; ++k) out[k] = forecast(k + 1);
  } else {
    // Weights once per tracked horizon, then one blend per step.
    const uint64_t origin = steps_ - 1;
    double weights[kStackTracked][kModelCount];
    double pointWeights[kStackTracked][kModelCount];
    bool known[kStackTracked];
    for (int j = 0; j < tracked; ++j) {
      trackedWeights(j, origin, weights[j], shape_->tuning().weightPower, kBandModelCount);
      trackedWeights(j, origin, pointWeights[j], shape_->pointWeightPower(j), kModelCount);
      known[j] = anyWeight(weights[j]);
    }
    double forecasts[kModelCount];
    const double band = bandScale();
    ModelOrder order;  // kept from step to step
    for (int k = 0; k < steps; ++k) {
      const int h = k + 1;
      const ModelShape::Bracket& bracket = shape_->bracket(h);
      liveForecasts(h, forecasts);
      const Blend centre{known[bracket.lower] ? weights[bracket.lower] : nullptr,
                         known[bracket.upper] ? weights[bracket.upper] : nullptr,
                         bracket.upperWeight};
      const Blend point{known[bracket.lower] ? pointWeights[bracket.lower] : nullptr,
                        known[bracket.upper] ? pointWeights[bracket.upper] : nullptr,
                        bracket.upperWeight};
      quantilesAt(h, blended(centre, forecasts),
                  pointBlended(point, forecasts, shape_->pointMedian(h), order), band, out[k]);
    }
  }
  for (size_t k = steps; k < out.size(); ++k) out[k] = Quantiles{};
}

HorizonAccuracy SeriesModel::accuracy(int j) const {
  HorizonAccuracy acc;
  acc.horizon = shape_->horizons()[j];
  const float* stats = trackedStats(j);
  acc.errors = static_cast<uint64_t>(stats[kCount]);
  if (stats[kMae] >= 0 && naiveScale_ > 0) acc.mase = stats[kMae] / naiveScale_;
  acc.coverage95 = stats[kCoverage] >= 0 ? stats[kCoverage] : 0;
  const Quantiles issued = forecast(acc.horizon);
  acc.p95Offset = std::max(0.0, issued.p95 - issued.p50);
  float best = -1;
  for (int m = 0; m < kModelCount; ++m) {
    const float error = modelError(m)[j];
    if (error >= 0 && (best < 0 || error < best)) {
      best = error;
      acc.bestModel = static_cast<ModelKind>(m);
    }
  }
  return acc;
}

void SeriesModel::scoreErrors(double value) {
  const ModelTuning& tuning = shape_->tuning();
  const uint64_t target = steps_;
  const int ringLength = shape_->ringLength();
  const int historyLength = shape_->historyLength();
  const int season = shape_->season();
  for (int j = 0; j < shape_->trackedCount(); ++j) {
    const int h = shape_->horizons()[j];
    if (target < uint64_t(h)) break;
    const uint64_t origin = target - h;
    const int at = wrapBack(ringPos_, h, ringLength);
    const double damp = shape_->dampSum(h);
    const double errorDecayAt = shape_->errorDecay(j);
    double stored[kModelCount] = {};
    stored[int(ModelKind::LastValue)] = hist()[wrapBack(histPos_, h, historyLength)];
    stored[int(ModelKind::RecentMean)] = ring(kRingMean)[at];
    stored[int(ModelKind::RecentMedian)] = ring(kRingFastLevel)[at];
    stored[int(ModelKind::SlowLevel)] = ring(kRingSlowLevel)[at];
    stored[int(ModelKind::DampedTrend)] =
        ring(kRingHoltLevel)[at] + damp * ring(kRingHoltTrend)[at];
    const bool seasonal = season > 0 && origin + 1 >= uint64_t(season);
    if (seasonal) {
      // The seasonal entry of the target's phase is unchanged since the
      // origin (it is updated once per season and h <= season).
      stored[int(ModelKind::SeasonalHoltWinters)] =
          ring(kRingHwLevel)[at] + damp * ring(kRingHwTrend)[at] + seasonalAt(seasonPos_);
      stored[int(ModelKind::SeasonalNaive)] = hist()[wrapBack(histPos_, season, historyLength)];
    }
    stored[int(ModelKind::SeasonMedian)] = recentMedianAfter(origin + 1);
    // The band's models scored (and stacked) at this origin.
    const int models = seasonal ? kBandModelCount : int(ModelKind::SeasonalHoltWinters);
    // The p50 issued at the origin, rebuilt from the models' stored forecasts
    // with the point weights as they stand now rather than h steps ago (the
    // errors behind them are slow EW means, so the two differ little; storing
    // the issued p50 per origin would cost another ring per horizon).
    double pointWeights[kModelCount];
    trackedWeights(j, origin, pointWeights, shape_->pointWeightPower(j), kModelCount);
    double point = -1;
    if (anyWeight(pointWeights) && shape_->pointMedian(h)) {
      ModelOrder order;
      point = std::max(0.0, weightedMedian(pointWeights, stored, 1.0, order.order));
    } else if (anyWeight(pointWeights)) {
      point = 0;
      for (int m = 0; m < kModelCount; ++m)
        if (pointWeights[m] > 0) point += pointWeights[m] * stored[m];
      point = std::max(0.0, point);
    }
    float* errors = modelError(0) + j;  // model m's at errors[m * trackedCount]
    const int stride = shape_->trackedCount();
    auto score = [&](int m) {
      float& error = errors[m * stride];
      error = static_cast<float>(ew(error, std::fabs(value - stored[m]), errorDecayAt));
    };
    for (int m = 0; m < models; ++m) score(m);
    if (available(int(ModelKind::SeasonMedian), origin)) score(int(ModelKind::SeasonMedian));
    if (j < shape_->stackedCount()) learnMix(j, value, stored, models);
    const int slot = trackedPos_[j];
    const float p50 = trackedP50(j)[slot];
    if (p50 < 0) continue;
    float* stats = trackedStats(j);
    const double error = value - p50;
    const double band = trackedScale(j)[slot];  // in force when it was issued
    const double unit = levelUnit(j, p50);
    const double pointError = point >= 0 ? value - point : error;
    stats[kMae] = static_cast<float>(ew(stats[kMae], std::fabs(pointError), tuning.coverageDecay));
    if (stats[kCount] == 0) {
      const double absError = std::fabs(error);
      stats[kErrorScale] = static_cast<float>(absError / band);
      stats[kQ95] = static_cast<float>(1.6 * absError / band);
      stats[kQ99] = static_cast<float>(2.6 * absError / band);
      stats[kErrorScaleRaw] = static_cast<float>(absError / unit);
      stats[kQ95Raw] = static_cast<float>(1.6 * absError / unit);
      stats[kQ99Raw] = static_cast<float>(2.6 * absError / unit);
      stats[kLoss] = stats[kLossRaw] = 0;
      stats[kCount] = 1;
      continue;
    }
    const double share = conditionalShare(stats);
    const double offset = share * stats[kQ95] * band + (1 - share) * stats[kQ95Raw] * unit;
    double issued95 = p50 + offset;
    const double recent = recentQuantileAfter(target - h + 1);
    if (recent >= 0) {
      // Online gradient step on the p95 pinball loss of the issued mix
      // p95 = tracked + share * (recent - tracked); the gap between the two
      // is taken relative to the tracked offset, so the step is scale-free.
      float& share = recentShare()[j];
      issued95 += share * (recent - issued95);
      const double norm = std::fabs(offset) + std::max(naiveScale_, 0.0) + 1e-9;
      const double slope = (value < issued95 ? 0.05 : -0.95) *
                           std::clamp((recent - (p50 + offset)) / norm, -3.0, 3.0);
      share = static_cast<float>(std::clamp(share - tuning.recentQuantileRate * slope, 0.0, 1.0));
    }
    const bool covered = value <= std::max(issued95, double(p50));
    stats[kCoverage] =
        static_cast<float>(ew(stats[kCoverage], covered ? 1.0 : 0.0, tuning.coverageDecay));
    const double step = shape_->quantileStep(j);
    trackQuantiles(error / band, step, stats + kQ95, stats[kLoss], band);
    trackQuantiles(error / unit, step, stats + kQ95Raw, stats[kLossRaw], unit);
    if (stats[kCount] < 1e7f) stats[kCount] += 1;
  }
}

// Online stacking for the absolute loss: the combination's weights move,
// multiplicatively, toward the models that sat on the actual's side of the
// combined forecast, in proportion to how far they sat from it (a
// scale-free exponentiated gradient); a small fixed share toward equal
// weights keeps every model able to come back after a regime change.
void SeriesModel::learnMix(int j, double value, const double* stored, int models) {
  const ModelTuning& tuning = shape_->tuning();
  float* mix = mixWeights(j);
  double sum = 0, combined = 0;
  for (int m = 0; m < models; ++m) sum += mix[m];
  if (!(sum > 0)) return;
  for (int m = 0; m < models; ++m) combined += mix[m] * stored[m];
  combined /= sum;
  double spread = 0;
  for (int m = 0; m < models; ++m) spread += mix[m] * std::fabs(stored[m] - combined);
  spread = spread / sum + 1e-9 + 1e-3 * std::max(naiveScale_, 0.0);
  const double side = value > combined ? 1.0 : value < combined ? -1.0 : 0.0;
  double total = 0;
  for (int m = 0; m < models; ++m) {
    const double gain = std::clamp(side * (stored[m] - combined) / spread, -3.0, 3.0);
    mix[m] = static_cast<float>(mix[m] * (1.0 + tuning.stackingRate * gain));
    total += mix[m];
  }
  for (int m = 0; m < models; ++m)
    mix[m] = static_cast<float>((1 - tuning.stackingShare) * mix[m] / total +
                                tuning.stackingShare / models);
}

void SeriesModel::advanceModels(double value) {
  const ModelTuning& tuning = shape_->tuning();
  const uint64_t t = steps_;
  const int historyLength = shape_->historyLength();
  if (t > 0) {
    const double change = std::fabs(value - last_);
    naiveScale_ = ew(naiveScale_, change, tuning.scaleDecay);
    volatility_ = t == 1 ? change : volatility_ + tuning.volatilityDecay * (change - volatility_);
  }
  // Running sum of the last kRecentWindow values (history >= the window).
  const auto stored = static_cast<float>(value);
  if (t >= uint64_t(kRecentWindow))
    recentSum_ -= hist()[wrapBack(histPos_, kRecentWindow, historyLength)];
  hist()[histPos_] = stored;
  recentSum_ += stored;
  last_ = value;

  if (t == 0) {
    fastLevel_ = slowLevel_ = holtLevel_ = value;
    fastSpread_ = slowSpread_ = 0;
    return;
  }
  robustStep(value, tuning.fastMedianRate, tuning.robustClip, fastLevel_, fastSpread_);
  robustStep(value, tuning.slowLevelRate, tuning.robustClip, slowLevel_, slowSpread_);

  // Damped Holt with an adaptive response rate: the gain follows how
  // persistent (biased) recent errors are, with spikes clipped.
  {
    double error = value - (holtLevel_ + tuning.dampingPhi * holtTrend_);
    if (holtAbs_ > 0) {
      const double limit = tuning.clipSigmas * holtAbs_;
      error = std::clamp(error, -limit, limit);
    }
    holtSignal_ += 0.1 * (error - holtSignal_);
    holtAbs_ += 0.1 * (std::fabs(error) - holtAbs_);
    const double alpha =
        std::clamp(0.1 + 0.6 * (holtAbs_ > 0 ? std::fabs(holtSignal_) / holtAbs_ : 0.0), 0.1, 0.7);
    holtLevel_ += tuning.dampingPhi * holtTrend_ + alpha * error;
    holtTrend_ = tuning.dampingPhi * holtTrend_ + tuning.trendBeta * alpha * error;
  }

  // Damped additive Holt-Winters on the season, started from the first season.
  const int season = shape_->season();
  if (season > 0 && t + 1 == uint64_t(season)) {
    double mean = 0;
    for (int i = 0; i < season; ++i) mean += hist()[i % historyLength];
    mean /= season;
    for (int i = 0; i < season; ++i)
      this->season()[i] = static_cast<float>(hist()[i % historyLength] - mean);
    hwLevel_ = mean;
    hwTrend_ = 0;
  } else if (season > 0 && t + 1 > uint64_t(season)) {
    float& seasonal = this->season()[seasonPos_];
    double error = value - (hwLevel_ + tuning.dampingPhi * hwTrend_ + seasonal);
    if (hwAbs_ > 0) {
      const double limit = tuning.clipSigmas * hwAbs_;
      error = std::clamp(error, -limit, limit);
    }
    hwSignal_ += 0.1 * (error - hwSignal_);
    hwAbs_ += 0.1 * (std::fabs(error) - hwAbs_);
    const double alpha =
        std::clamp(0.05 + 0.5 * (hwAbs_ > 0 ? std::fabs(hwSignal_) / hwAbs_ : 0.0), 0.05, 0.6);
    hwLevel_ += tuning.dampingPhi * hwTrend_ + alpha * error;
    hwTrend_ = tuning.dampingPhi * hwTrend_ + tuning.trendBeta * alpha * error;
    seasonal += static_cast<float>(tuning.seasonGamma * (1 - alpha) * error);
  }
}

void SeriesModel::recordOrigin() {
  const int at = ringPos_;
  const int window = static_cast<int>(std::min<uint64_t>(steps_ + 1, kRecentWindow));
  ring(kRingMean)[at] = static_cast<float>(recentSum_ / window);
  ring(kRingFastLevel)[at] = static_cast<float>(fastLevel_);
  ring(kRingSlowLevel)[at] = static_cast<float>(slowLevel_);
  ring(kRingHoltLevel)[at] = static_cast<float>(holtLevel_);
  ring(kRingHoltTrend)[at] = static_cast<float>(holtTrend_);
  ring(kRingHwLevel)[at] = static_cast<float>(hwLevel_);
  ring(kRingHwTrend)[at] = static_cast<float>(hwTrend_);
}

// Issues this origin's combined forecasts at the tracked horizons, with the
// band scale in force, to be scored h steps later.
void SeriesModel::issueTracked() {
  const uint64_t origin = steps_ - 1;
  const auto band = static_cast<float>(bandScale());
  double weights[kModelCount], forecasts[kModelCount];
  for (int j = 0; j < shape_->trackedCount(); ++j) {
    const int h = shape_->horizons()[j];
    trackedWeights(j, origin, weights, shape_->tuning().weightPower, kBandModelCount);
    liveForecasts(h, forecasts);
    const Blend blend{anyWeight(weights) ? weights : nullptr, nullptr, 0.0};
    const int slot = trackedPos_[j];
    trackedP50(j)[slot] = static_cast<float>(std::max(0.0, blended(blend, forecasts)));
    trackedScale(j)[slot] = band;
  }
}

// The p95 of the recent values (over the season), refreshed every
// recentQuantileEvery steps into a small ring so that the value in force at
// any origin up to maxHorizon steps back can be scored against its target.
void SeriesModel::refreshRecentQuantile() {
  const int window = static_cast<int>(std::min<uint64_t>(steps_, shape_->recentQuantileWindow()));
  const int rank = static_cast<int>(std::lround(0.95 * (window - 1)));
  // The (window - rank) largest values in a min-heap: one comparison for
  // most values, instead of copying and partitioning the whole window.
  const int kept = window - rank;
  float top[ModelShape::kMaxRecentQuantileWindow / 20 + 2];
  int size = 0;
  auto consider = [&](const float* from, const float* to) {
    for (const float* at = from; at < to; ++at) {
      if (size < kept) {
        top[size++] = *at;
        std::push_heap(top, top + size, std::greater<float>());
      } else if (*at > top[0]) {
        std::pop_heap(top, top + size, std::greater<float>());
        top[size - 1] = *at;
        std::push_heap(top, top + size, std::greater<float>());
      }
    }
  };
  // The last `window` values of the history ring, in at most two runs.
  const int historyLength = shape_->historyLength();
  const int start = wrapBack(histPos_, window, historyLength);
  if (start < histPos_ || window == 0) {
    consider(hist() + start, hist() + histPos_);
  } else {
    consider(hist() + start, hist() + historyLength);
    consider(hist(), hist() + histPos_);
  }
  const uint64_t refresh = steps_ / uint64_t(shape_->tuning().recentQuantileEvery);
  const uint64_t slot = refresh % uint64_t(shape_->recentQuantileSlots());
  recentQuantiles()[slot] = top[0];
  // The median over the same window, for the season-median model.
  float values[ModelShape::kMaxRecentQuantileWindow];
  copyLast(hist(), histPos_, window, historyLength, values);
  recentMedians()[slot] = static_cast<float>(medianOf(values, window));
}

// The recent median in force once `stepsSoFar` steps had been taken; < 0 if none.
double SeriesModel::recentMedianAfter(uint64_t stepsSoFar) const {
  const auto every = uint64_t(shape_->tuning().recentQuantileEvery);
  if (stepsSoFar < every) return -1;
  return recentMedians()[(stepsSoFar / every) % uint64_t(shape_->recentQuantileSlots())];
}

// The recent p95 in force once `stepsSoFar` steps had been taken; < 0 if none.
double SeriesModel::recentQuantileAfter(uint64_t stepsSoFar) const {
  const auto every = uint64_t(shape_->tuning().recentQuantileEvery);
  if (stepsSoFar < every) return -1;
  return recentQuantiles()[(stepsSoFar / every) % uint64_t(shape_->recentQuantileSlots())];
}

void SeriesModel::update(double value, bool filled) {
  if (!std::isfinite(value)) return;  // callers validate; never poison the state
  if (!filled) scoreErrors(value);
  advanceModels(value);
  recordOrigin();
  ++steps_;
  if (++histPos_ == shape_->historyLength()) histPos_ = 0;
  if (++ringPos_ == shape_->ringLength()) ringPos_ = 0;
  if (shape_->season() > 0 && ++seasonPos_ == shape_->season()) seasonPos_ = 0;
  if (steps_ % uint64_t(shape_->tuning().recentQuantileEvery) == 0) refreshRecentQuantile();
  issueTracked();
  for (int j = 0; j < shape_->trackedCount(); ++j)
    if (++trackedPos_[j] == shape_->horizons()[j]) trackedPos_[j] = 0;
}

}  // namespace Atoll::forecast
