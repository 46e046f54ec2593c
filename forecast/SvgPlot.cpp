#include "forecast/SvgPlot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace Atoll::forecast {

namespace {

std::string escapeXml(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string number(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f", value);
  return buffer;
}

}  // namespace

std::string renderForecastSvg(const ForecastPlot& plot) {
  constexpr double kMargin = 40;
  const size_t count = std::max({plot.actual.size(), plot.p50.size(), plot.p95.size()});
  double top = 0;
  for (const auto* values : {&plot.actual, &plot.p50, &plot.p95})
    for (double v : *values)
      if (std::isfinite(v)) top = std::max(top, v);
  if (top <= 0) top = 1;
  const double plotWidth = plot.width - 2 * kMargin;
  const double plotHeight = plot.height - 2 * kMargin;
  auto x = [&](size_t i) {
    return kMargin + (count > 1 ? plotWidth * double(i) / double(count - 1) : plotWidth / 2);
  };
  auto y = [&](double v) { return kMargin + plotHeight * (1.0 - v / top); };
  auto at = [](const std::vector<double>& values, size_t i) {
    return i < values.size() ? values[i] : std::nan("");
  };

  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" +
                    std::to_string(plot.width) + "\" height=\"" + std::to_string(plot.height) +
                    "\" viewBox=\"0 0 " + std::to_string(plot.width) + " " +
                    std::to_string(plot.height) + "\">\n";
  svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  svg += "<text x=\"" + number(kMargin) +
         "\" y=\"20\" font-family=\"sans-serif\" font-size=\"14\">" + escapeXml(plot.title) +
         "</text>\n";
  // Band p50..p95: one polygon per run of steps where both are known.
  size_t i = 0;
  while (i < count) {
    while (i < count && !(std::isfinite(at(plot.p50, i)) && std::isfinite(at(plot.p95, i)))) ++i;
    const size_t start = i;
    while (i < count && std::isfinite(at(plot.p50, i)) && std::isfinite(at(plot.p95, i))) ++i;
    if (i <= start) continue;
    std::string points;
    for (size_t k = start; k < i; ++k)
      points += number(x(k)) + "," + number(y(at(plot.p95, k))) + " ";
    for (size_t k = i; k-- > start;)
      points += number(x(k)) + "," + number(y(at(plot.p50, k))) + " ";
    svg +=
        "<polygon class=\"p95-band\" fill=\"#f4a261\" fill-opacity=\"0.35\" stroke=\"none\" "
        "points=\"" +
        points + "\"/>\n";
  }
  auto polyline = [&](const std::vector<double>& values, const char* cls, const char* color) {
    std::string out;
    size_t k = 0;
    while (k < count) {
      while (k < count && !std::isfinite(at(values, k))) ++k;
      std::string points;
      while (k < count && std::isfinite(at(values, k))) {
        points += number(x(k)) + "," + number(y(values[k])) + " ";
        ++k;
      }
      if (!points.empty())
        out += std::string("<polyline class=\"") + cls + "\" fill=\"none\" stroke=\"" + color +
               "\" stroke-width=\"1.5\" points=\"" + points + "\"/>\n";
    }
    return out;
  };
  svg += polyline(plot.p50, "p50", "#e76f51");
  svg += polyline(plot.actual, "actual", "#264653");
  // Axes and the scale's top value.
  svg += "<line x1=\"" + number(kMargin) + "\" y1=\"" + number(kMargin + plotHeight) + "\" x2=\"" +
         number(kMargin + plotWidth) + "\" y2=\"" + number(kMargin + plotHeight) +
         "\" stroke=\"black\"/>\n";
  svg += "<line x1=\"" + number(kMargin) + "\" y1=\"" + number(kMargin) + "\" x2=\"" +
         number(kMargin) + "\" y2=\"" + number(kMargin + plotHeight) + "\" stroke=\"black\"/>\n";
  char topLabel[48];
  std::snprintf(topLabel, sizeof topLabel, "%.4g", top);
  svg += "<text x=\"2\" y=\"" + number(kMargin + 4) +
         "\" font-family=\"sans-serif\" font-size=\"10\">" + topLabel + "</text>\n";
  svg += "<text x=\"" + number(kMargin + plotWidth - 200) +
         "\" y=\"20\" font-family=\"sans-serif\" font-size=\"11\">actual (dark), p50 (red), "
         "p50-p95 (band)</text>\n";
  svg += "</svg>\n";
  return svg;
}

}  // namespace Atoll::forecast
