#include "forecast/SeriesModel.h"

#include <algorithm>
#include <cmath>
#include <cstring>

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

// The powers of the combination weights the tuning uses are small integers:
// raised by multiplication, with the power chosen once per set of weights
// rather than per model.
enum class PowerKind { Two, Four, Eight, Sixteen, Other };

PowerKind powerKind(double power) {
  return power == 4.0    ? PowerKind::Four
         : power == 8.0  ? PowerKind::Eight
         : power == 16.0 ? PowerKind::Sixteen
         : power == 2.0  ? PowerKind::Two
                         : PowerKind::Other;
}

template <PowerKind Kind>
double raised(double r, double power) {
  const double r2 = r * r;
  const double r4 = r2 * r2;
  if constexpr (Kind == PowerKind::Two) return r2;
  if constexpr (Kind == PowerKind::Four) return r4;
  if constexpr (Kind == PowerKind::Eight) return r4 * r4;
  if constexpr (Kind == PowerKind::Sixteen) return (r4 * r4) * (r4 * r4);
  return std::pow(r, power);
}

// Normalised weights (least / error)^power of models [0, models) from their
// floored errors (0: no weight), times the stacking weights `mix` when given
// (point-only models count as an average one); weights[models, kModelCount)
// are 0. Errors are taken relative to the least one, so a high power neither
// overflows nor underflows whatever the series' units.
template <PowerKind Kind>
void weightsFromErrors(const double* errors, int models, double power, const float* mix,
                       double* weights) {
  double least = 0;
  for (int m = 0; m < models; ++m)
    if (errors[m] > 0 && (least == 0 || errors[m] < least)) least = errors[m];
  double sum = 0;
  for (int m = 0; m < kModelCount; ++m) {
    double weight = 0;
    if (m < models && errors[m] != 0) {
      weight = raised<Kind>(least / errors[m], power);  // r <= 1
      if (mix != nullptr) weight *= m < kBandModelCount ? mix[m] : 1.0 / kBandModelCount;
    }
    weights[m] = weight;
    sum += weight;
  }
  const double scale = sum > 0 ? 1.0 / sum : 0.0;
  for (int m = 0; m < kModelCount; ++m) weights[m] *= scale;
}

void weightsFromErrors(const double* errors, int models, double power, const float* mix,
                       double* weights) {
  switch (powerKind(power)) {
    case PowerKind::Two:
      return weightsFromErrors<PowerKind::Two>(errors, models, power, mix, weights);
    case PowerKind::Four:
      return weightsFromErrors<PowerKind::Four>(errors, models, power, mix, weights);
    case PowerKind::Eight:
      return weightsFromErrors<PowerKind::Eight>(errors, models, power, mix, weights);
    case PowerKind::Sixteen:
      return weightsFromErrors<PowerKind::Sixteen>(errors, models, power, mix, weights);
    case PowerKind::Other:
      return weightsFromErrors<PowerKind::Other>(errors, models, power, mix, weights);
  }
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

ModelShape::ArenaLayout SeriesModel::arenaLayoutFor(const ModelShape& shape) {
  ModelShape::ArenaLayout layout;
  layout.season = size_t(shape.historyLength());
  layout.rings = layout.season + size_t(shape.season());
  layout.trackedP50 = layout.rings + size_t(kRingCount) * shape.ringLength();
  layout.trackedScale = layout.trackedP50 + size_t(shape.trackedRingTotal());
  layout.modelErrors = layout.trackedScale + size_t(shape.trackedRingTotal());
  layout.trackedStats = layout.modelErrors + size_t(kModelCount) * shape.trackedCount();
  layout.mixWeights = layout.trackedStats + size_t(kStatCount) * shape.trackedCount();
  layout.recentShare = layout.mixWeights + size_t(kBandModelCount) * shape.stackedCount();
  layout.recentQuantiles = layout.recentShare + size_t(shape.trackedCount());
  layout.recentMedians = layout.recentQuantiles + size_t(shape.recentQuantileSlots());
  layout.total = layout.recentMedians + size_t(shape.recentQuantileSlots());
  return layout;
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
  return arena_.get() + shape_->arenaLayout().season;
}
float* SeriesModel::ring(int slot) const {
  return arena_.get() + shape_->arenaLayout().rings + size_t(slot) * shape_->ringLength();
}
float* SeriesModel::trackedP50(int j) const {
  return arena_.get() + shape_->arenaLayout().trackedP50 + shape_->trackedRingOffset(j);
}
float* SeriesModel::trackedScale(int j) const {
  return arena_.get() + shape_->arenaLayout().trackedScale + shape_->trackedRingOffset(j);
}
float* SeriesModel::modelError(int model) const {
  return arena_.get() + shape_->arenaLayout().modelErrors + size_t(model) * shape_->trackedCount();
}
float* SeriesModel::trackedStats(int j) const {
  return arena_.get() + shape_->arenaLayout().trackedStats + size_t(j) * kStatCount;
}
float* SeriesModel::mixWeights(int j) const {
  return arena_.get() + shape_->arenaLayout().mixWeights + size_t(j) * kBandModelCount;
}
float* SeriesModel::recentShare() const {
  return arena_.get() + shape_->arenaLayout().recentShare;
}
float* SeriesModel::recentQuantiles() const {
  return arena_.get() + shape_->arenaLayout().recentQuantiles;
}
float* SeriesModel::recentMedians() const {
  return arena_.get() + shape_->arenaLayout().recentMedians;
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

// Each model's error at tracked horizon j plus a floor (0: no weight yet, or
// not available from this origin), the input of the combination weights.
void SeriesModel::flooredErrors(int j, uint64_t origin, double* errors) const {
  const double floor = 1e-9 + 1e-3 * std::max(naiveScale_, 0.0);
  const float* error = modelError(0) + j;  // model m's at error[m * trackedCount]
  const int stride = shape_->trackedCount();
  for (int m = 0; m < kModelCount; ++m) {
    const float e = error[m * stride];
    errors[m] = e >= 0 ? e + floor : 0.0;
  }
  if (!available(int(ModelKind::SeasonalNaive), origin))
    errors[int(ModelKind::SeasonalHoltWinters)] = errors[int(ModelKind::SeasonalNaive)] = 0;
  if (!available(int(ModelKind::SeasonMedian), origin)) errors[int(ModelKind::SeasonMedian)] = 0;
}

void SeriesModel::trackedWeights(int j, uint64_t origin, double* weights, double power,
                                 int models) const {
  double errors[kModelCount];
  flooredErrors(j, origin, errors);
  if (!shape_->tuning().pointSeasonMedian) models = std::min(models, kBandModelCount);
  weightsFromErrors(errors, models, power, j < shape_->stackedCount() ? mixWeights(j) : nullptr,
                    weights);
}

void SeriesModel::trackedWeightPair(int j, uint64_t origin, double* band, double* point) const {
  double errors[kModelCount];
  flooredErrors(j, origin, errors);
  const float* mix = j < shape_->stackedCount() ? mixWeights(j) : nullptr;
  weightsFromErrors(errors, kBandModelCount, shape_->tuning().weightPower, mix, band);
  weightsFromErrors(errors, shape_->tuning().pointSeasonMedian ? kModelCount : kBandModelCount,
                    shape_->pointWeightPower(j), mix, point);
}

// Forecasts of every model h steps after the last update (unavailable: 0).
void SeriesModel::liveForecasts(int h, double* forecasts) const {
  levelForecasts(forecasts);
  horizonForecasts(h, available(int(ModelKind::SeasonalNaive), steps_ - 1), forecasts);
}

void SeriesModel::levelForecasts(double* forecasts) const {
  const int window = static_cast<int>(std::min<uint64_t>(steps_, kRecentWindow));
  forecasts[int(ModelKind::LastValue)] = last_;
  forecasts[int(ModelKind::RecentMean)] = recentSum_ / window;
  forecasts[int(ModelKind::SeasonMedian)] = std::max(0.0, recentMedianAfter(steps_));
  forecasts[int(ModelKind::RecentMedian)] = fastLevel_;
  forecasts[int(ModelKind::SlowLevel)] = slowLevel_;
}

void SeriesModel::horizonForecasts(int h, bool seasonal, double* forecasts) const {
  const double damp = shape_->dampSum(h);
  forecasts[int(ModelKind::DampedTrend)] = holtLevel_ + damp * holtTrend_;
  if (seasonal) {
    // Target origin + h; its phase is seasonPos_ + h - 1, its value one
    // season earlier sits h - 1 - season after the next history slot.
    const int season = shape_->season();
    int phase = seasonPos_ + h - 1;
    if (phase >= season) phase -= season;
    forecasts[int(ModelKind::SeasonalHoltWinters)] = hwLevel_ + damp * hwTrend_ + seasonalAt(phase);
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

// Sorts `order` (a permutation of the models) by forecast, stably: models
// with equal forecasts keep their order. Each model's place is counted from
// comparisons with all the others rather than found by swaps, so no branch
// depends on the forecasts (an insertion sort's branches follow them, and
// the predictor misses many). False, and `order` unchanged, when a forecast
// is NaN (no strict order to count).
bool sortByForecast(const double* forecasts, int* order) {
  int position[kModelCount];
  bool comparable = true;
  for (int i = 0; i < kModelCount; ++i) {
    position[order[i]] = i;
    comparable &= forecasts[i] == forecasts[i];
  }
  if (!comparable) return false;
  int sorted[kModelCount];
  for (int m = 0; m < kModelCount; ++m) {
    int place = 0;
    for (int k = 0; k < kModelCount; ++k)
      place += int(forecasts[k] < forecasts[m]) |
               int(forecasts[k] == forecasts[m] && position[k] < position[m]);
    sorted[place] = m;
  }
  std::copy(sorted, sorted + kModelCount, order);
  return true;
}

// The models in the order of an earlier weighted median's forecasts (ties
// are taken in this order). `kept`: it comes from a nearby forecast (the
// previous step of a profile), so it mostly still holds and an insertion
// sort only checks it; a fresh order is sorted by counting (sortByForecast).
struct ModelOrder {
  int order[kModelCount] = {0, 1, 2, 3, 4, 5, 6, 7};
  bool kept = false;
  static_assert(kModelCount == 8);
};

// The weighted median of the models' forecasts (the lowest forecast at which
// the cumulative weight reaches half), for weights[0, kModelCount) summing
// to `total` > 0.
double weightedMedian(const double* weights, const double* forecasts, double total,
                      ModelOrder& models) {
  const double half = 0.5 * total;
  // Often one model holds most of the weight: it is the median, no sort.
  for (int m = 0; m < kModelCount; ++m)
    if (weights[m] > half) return forecasts[m];
  int* order = models.order;
  if (models.kept || !sortByForecast(forecasts, order)) {
    for (int i = 1; i < kModelCount; ++i)
      for (int k = i; k > 0 && forecasts[order[k]] < forecasts[order[k - 1]]; --k)
        std::swap(order[k], order[k - 1]);
  }
  models.kept = true;
  // The cumulative weight only grows, so the models before the median are
  // those it has not reached half at; models without weight add nothing.
  double cumulative = 0;
  int below = 0;
  for (int i = 0; i < kModelCount; ++i) {
    const double weight = weights[order[i]];
    cumulative += weight > 0 ? weight : 0.0;
    below += int(cumulative < half);
  }
  if (below < kModelCount) return forecasts[order[below]];
  // Rounding: the last weighted model.
  for (int i = kModelCount - 1; i >= 0; --i)
    if (weights[order[i]] > 0) return forecasts[order[i]];
  return 0.0;
}

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
  return total > 0 ? weightedMedian(weights, forecasts, total, order) : blended(blend, forecasts);
}

// The model holding clearly more than half of normalised weights (sum 1),
// else -1. The margin is far above the rounding of the weights, their sum
// and their interpolation between two horizons, so where two horizons'
// weights share such a model, weightedMedian of any blend of them returns
// that model's forecast.
int dominantModel(const double* weights) {
  constexpr double kClearHalf = 0.5 + 1e-6;
  for (int m = 0; m < kModelCount; ++m)
    if (weights[m] > kClearHalf) return m;
  return -1;
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
  double pointLower[kModelCount], pointUpper[kModelCount];
  liveForecasts(h, forecasts);
  trackedWeightPair(bracket.lower, origin, lower, pointLower);
  trackedWeightPair(bracket.upper, origin, upper, pointUpper);
  const Blend centre{anyWeight(lower) ? lower : nullptr, anyWeight(upper) ? upper : nullptr,
                     bracket.upperWeight};
  const double centreValue = blended(centre, forecasts);
  const Blend point{anyWeight(pointLower) ? pointLower : nullptr,
                    anyWeight(pointUpper) ? pointUpper : nullptr, bracket.upperWeight};
  ModelOrder order;
  const double band = bandScale();
  quantilesAt(h, centreValue, pointBlended(point, forecasts, shape_->pointMedian(h), order),
              bandOffsets(bracket.lower, band), bandOffsets(bracket.upper, band),
              recentQuantileAfter(steps_), out);
  return out;
}

// The two error models' offsets at tracked horizon j blended by their losses
// (see conditionalShare), with the band scale in force; what depends on the
// forecast level (the level-relative tracker's unit) is applied per horizon.
SeriesModel::BandOffsets SeriesModel::bandOffsets(int j, double band) const {
  const float* stats = trackedStats(j);
  BandOffsets offsets;
  offsets.seen = stats[kCount] > 0;
  offsets.relative = shape_->horizons()[j] <= shape_->tuning().relativeBandMaxHorizon;
  if (!offsets.seen) return offsets;
  const double share = conditionalShare(stats);
  offsets.q95Scaled = share * stats[kQ95] * band;
  offsets.q99Scaled = share * stats[kQ99] * band;
  offsets.q95Raw = (1 - share) * stats[kQ95Raw];
  offsets.q99Raw = (1 - share) * stats[kQ99Raw];
  return offsets;
}

// p50 is the point blend; the upper quantiles are offsets from the centre
// blend, whose errors they track. `recent`: recentQuantileAfter(steps_).
void SeriesModel::quantilesAt(int h, double centre, double point, const BandOffsets& lower,
                              const BandOffsets& upper, double recent, Quantiles& out) const {
  const ModelShape::Bracket& bracket = shape_->bracket(h);
  const double p50 = std::max(0.0, centre);
  // Offsets in the series' units (the unit of levelUnit()).
  auto offsets = [this, p50](const BandOffsets& at, double& q95, double& q99) {
    const double unit = at.relative ? p50 + std::max(naiveScale_, 1e-9) : 1.0;
    q95 = at.q95Scaled + at.q95Raw * unit;
    q99 = at.q99Scaled + at.q99Raw * unit;
  };
  double q95, q99;
  if (upper.seen && lower.seen) {
    double lower95, lower99, upper95, upper99;
    offsets(lower, lower95, lower99);
    offsets(upper, upper95, upper99);
    const double u = bracket.upperWeight;
    q95 = lower95 + u * (upper95 - lower95);
    q99 = lower99 + u * (upper99 - lower99);
  } else if (upper.seen || lower.seen) {
    offsets(upper.seen ? upper : lower, q95, q99);
  } else {
    // No error seen yet at this horizon: a provisional spread from the
    // series' own step-to-step change, replaced as soon as errors arrive.
    const double spread = std::max(naiveScale_, 0.0) * std::sqrt(double(h));
    q95 = 2.0 * spread;
    q99 = 3.0 * spread;
  }
  // The issued p95 mixes the tracked one with the recent values' p95, by
  // the share learned at the bracketing horizons.
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
    // Weights and band offsets once per tracked horizon, then one blend per
    // step; what no step changes is taken once.
    const uint64_t origin = steps_ - 1;
    const double band = bandScale();
    const double recent = recentQuantileAfter(steps_);
    const bool seasonal = available(int(ModelKind::SeasonalNaive), origin);
    double weights[kStackTracked][kModelCount];
    double pointWeights[kStackTracked][kModelCount];
    bool known[kStackTracked];
    int dominant[kStackTracked];
    BandOffsets offsets[kStackTracked];
    for (int j = 0; j < tracked; ++j) {
      trackedWeightPair(j, origin, weights[j], pointWeights[j]);
      known[j] = anyWeight(weights[j]);
      dominant[j] = dominantModel(pointWeights[j]);
      offsets[j] = bandOffsets(j, band);
    }
    double forecasts[kModelCount];
    levelForecasts(forecasts);
    ModelOrder order;  // kept from step to step
    for (int k = 0; k < steps; ++k) {
      const int h = k + 1;
      const ModelShape::Bracket& bracket = shape_->bracket(h);
      horizonForecasts(h, seasonal, forecasts);
      const Blend centre{known[bracket.lower] ? weights[bracket.lower] : nullptr,
                         known[bracket.upper] ? weights[bracket.upper] : nullptr,
                         bracket.upperWeight};
      const Blend point{known[bracket.lower] ? pointWeights[bracket.lower] : nullptr,
                        known[bracket.upper] ? pointWeights[bracket.upper] : nullptr,
                        bracket.upperWeight};
      // A model that holds more than half the point weight at both
      // bracketing horizons holds it at every horizon between them: it is
      // the weighted median, with no blend of the weights.
      const bool median = shape_->pointMedian(h);
      int only = -1;
      if (median && (point.lower != nullptr || point.upper != nullptr)) {
        const int lower = dominant[point.lower ? bracket.lower : bracket.upper];
        const int upper = dominant[point.upper ? bracket.upper : bracket.lower];
        if (lower == upper) only = lower;
      }
      quantilesAt(h, blended(centre, forecasts),
                  only >= 0 ? forecasts[only] : pointBlended(point, forecasts, median, order),
                  offsets[bracket.lower], offsets[bracket.upper], recent, out[k]);
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
    // The recent median and p95 in force at the origin (one slot for both).
    const int recentAt = recentSlotAfter(origin + 1);
    stored[int(ModelKind::SeasonMedian)] = recentAt >= 0 ? recentMedians()[recentAt] : -1.0;
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
      point = std::max(0.0, weightedMedian(pointWeights, stored, 1.0, order));
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
    const double recent = recentAt >= 0 ? recentQuantiles()[recentAt] : -1.0;
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
  const bool seasonal = available(int(ModelKind::SeasonalNaive), origin);
  double weights[kModelCount], forecasts[kModelCount];
  levelForecasts(forecasts);
  for (int j = 0; j < shape_->trackedCount(); ++j) {
    const int h = shape_->horizons()[j];
    trackedWeights(j, origin, weights, shape_->tuning().weightPower, kBandModelCount);
    horizonForecasts(h, seasonal, forecasts);
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
  // The last `window` values of the history ring, partitioned around the
  // middle for the median (the season-median model); the p95 (the value of
  // rank `rank`) is then selected within the side that holds it, about half
  // the values.
  float values[ModelShape::kMaxRecentQuantileWindow];
  copyLast(hist(), histPos_, window, shape_->historyLength(), values);
  const double median = medianOf(values, window);
  const int middle = window / 2;
  if (rank > middle)
    std::nth_element(values + middle + 1, values + rank, values + window);
  else if (rank < middle)
    std::nth_element(values, values + rank, values + middle);
  const uint64_t refresh = steps_ / uint64_t(shape_->tuning().recentQuantileEvery);
  const uint64_t slot = refresh % uint64_t(shape_->recentQuantileSlots());
  recentQuantiles()[slot] = values[rank];
  recentMedians()[slot] = static_cast<float>(median);
}

// The slot of the recent median and p95 in force once `stepsSoFar` steps had
// been taken; < 0 if none.
int SeriesModel::recentSlotAfter(uint64_t stepsSoFar) const {
  const auto every = uint64_t(shape_->tuning().recentQuantileEvery);
  if (stepsSoFar < every) return -1;
  return static_cast<int>((stepsSoFar / every) % uint64_t(shape_->recentQuantileSlots()));
}

// The recent median in force once `stepsSoFar` steps had been taken; < 0 if none.
double SeriesModel::recentMedianAfter(uint64_t stepsSoFar) const {
  const int slot = recentSlotAfter(stepsSoFar);
  return slot >= 0 ? recentMedians()[slot] : -1.0;
}

// The recent p95 in force once `stepsSoFar` steps had been taken; < 0 if none.
double SeriesModel::recentQuantileAfter(uint64_t stepsSoFar) const {
  const int slot = recentSlotAfter(stepsSoFar);
  return slot >= 0 ? recentQuantiles()[slot] : -1.0;
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
