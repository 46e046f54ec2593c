#include "forecast/Replay.h"

#include <algorithm>
#include <charconv>

#include "forecast/SeriesModel.h"

namespace Atoll::forecast {

namespace {

void appendNumber(std::string& out, double value) {
  char buffer[32];
  auto [end, ec] =
      std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::general, 7);
  if (ec == std::errc()) out.append(buffer, end);
}

void appendInteger(std::string& out, uint64_t value) {
  char buffer[24];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  if (ec == std::errc()) out.append(buffer, end);
}

}  // namespace

ModelConfig replayModelConfig(const std::vector<int>& horizons, int seasonSteps) {
  ModelConfig config;
  config.seasonSteps = seasonSteps;
  for (int h : horizons) config.trackedHorizons.push_back(h);
  int longest = config.maxHorizon;
  for (int h : horizons) longest = std::max(longest, h);
  config.maxHorizon = seasonSteps > 0 ? std::min(longest, seasonSteps) : longest;
  if (seasonSteps > 0) {
    auto& tracked = config.trackedHorizons;
    tracked.erase(std::remove_if(tracked.begin(), tracked.end(),
                                 [&](int h) {
                                   return h > seasonSteps &&
                                          std::find(horizons.begin(), horizons.end(), h) ==
                                              horizons.end();
                                 }),
                  tracked.end());
  }
  return config;
}

void replaySeries(const ReplaySeries& series, const ModelShape& shape,
                  const std::vector<int>& horizons, std::string& out) {
  SeriesModel model(shape);
  for (size_t t = 0; t < series.values.size(); ++t) {
    model.update(series.values[t]);
    for (int h : horizons) {
      const Quantiles q = model.forecast(h);
      out += series.name;
      out += ',';
      appendInteger(out, t);
      out += ',';
      appendInteger(out, uint64_t(h));
      out += ',';
      appendNumber(out, q.p50);
      out += ',';
      appendNumber(out, q.p95);
      out += '\n';
    }
  }
}

Parsed<std::vector<int>> parseHorizonList(const std::string& text) {
  std::vector<int> horizons;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find(',', pos);
    if (end == std::string::npos) end = text.size();
    const std::string item = text.substr(pos, end - pos);
    int h = 0;
    auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), h);
    if (item.empty() || ec != std::errc() || ptr != item.data() + item.size() || h < 1)
      return InputError{"--horizons", 0, item,
                        "a horizon must be a positive whole number of steps"};
    horizons.push_back(h);
    pos = end + 1;
  }
  return horizons;
}

}  // namespace Atoll::forecast
