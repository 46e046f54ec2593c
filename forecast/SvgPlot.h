#pragma once
// Renders a forecast plot as a standalone SVG: the actual series, the p50
// forecast, and the band from p50 to p95. Pure function of its input.
#include <string>
#include <vector>

namespace Atoll::forecast {

struct ForecastPlot {
  std::string title;
  // One entry per target step; NaN where there is no value.
  std::vector<double> actual;
  std::vector<double> p50;
  std::vector<double> p95;
  int width = 900;
  int height = 320;
};

std::string renderForecastSvg(const ForecastPlot& plot);

}  // namespace Atoll::forecast
