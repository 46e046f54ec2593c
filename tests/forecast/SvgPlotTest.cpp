#include "forecast/SvgPlot.h"

#include <gtest/gtest.h>

#include <cmath>

namespace Atoll::forecast {
namespace {

size_t count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1))
    ++n;
  return n;
}

TEST(SvgPlot, DrawsActualP50AndBandWithGaps) {
  ForecastPlot plot;
  plot.title = "vm <1> & co";
  const double nan = std::nan("");
  plot.actual = {1, 2, 3, 4, 5, 6};
  plot.p50 = {nan, 2, 3, nan, 5, 6};
  plot.p95 = {nan, 3, 4, nan, 7, 8};
  const std::string svg = renderForecastSvg(plot);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_EQ(count(svg, "class=\"actual\""), 1u);
  EXPECT_EQ(count(svg, "class=\"p50\""), 2u);       // split at the gap
  EXPECT_EQ(count(svg, "class=\"p95-band\""), 2u);  // split at the gap
  EXPECT_NE(svg.find("vm &lt;1&gt; &amp; co"), std::string::npos);
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  // The highest value (p95 = 8) is drawn at the top margin (y = 40).
  EXPECT_NE(svg.find(",40.0"), std::string::npos);
}

TEST(SvgPlot, EmptyInputStillValid) {
  const std::string svg = renderForecastSvg(ForecastPlot{});
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_EQ(svg.find("polyline"), std::string::npos);
}

}  // namespace
}  // namespace Atoll::forecast
