#include "forecast/ReplayOutput.h"

#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>

#include "forecast/Replay.h"

namespace Atoll::forecast {

namespace {

std::vector<std::string_view> splitFields(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t pos = 0;
  while (true) {
    const size_t comma = line.find(',', pos);
    fields.push_back(
        line.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos));
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return fields;
}

template <typename T>
bool parseField(std::string_view text, T& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

Parsed<ReplayForecastPath> parseReplayOutput(std::string_view content, const std::string& fileLabel,
                                             const std::string& series, int horizon) {
  ReplayForecastPath path;
  const std::string_view header =
      std::string_view(kReplayHeader).substr(0, std::string_view(kReplayHeader).size() - 1);
  size_t pos = 0;
  uint64_t line = 0;
  bool found = false;
  while (pos < content.size()) {
    size_t end = content.find('\n', pos);
    if (end == std::string_view::npos) end = content.size();
    std::string_view text = content.substr(pos, end - pos);
    if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
    pos = end + 1;
    ++line;
    if (line == 1) {
      if (text != header)
        return InputError{fileLabel, line, std::string(text),
                          "header must be '" + std::string(header) + "'"};
      continue;
    }
    if (text.empty()) continue;
    const auto fields = splitFields(text);
    if (fields.size() != 5)
      return InputError{fileLabel, line, std::string(text), "a row must have 5 fields"};
    if (fields[0] != series) continue;
    uint64_t origin;
    int h;
    double p50, p95;
    if (!parseField(fields[1], origin))
      return InputError{fileLabel, line, std::string(fields[1]), "origin_index is not a number"};
    if (!parseField(fields[2], h))
      return InputError{fileLabel, line, std::string(fields[2]), "horizon is not a number"};
    if (h != horizon) continue;
    if (!parseField(fields[3], p50) || !parseField(fields[4], p95))
      return InputError{fileLabel, line, std::string(text), "p50 or p95 is not a number"};
    const size_t target = origin + static_cast<uint64_t>(h);
    if (target > 50'000'000)
      return InputError{fileLabel, line, std::string(fields[1]),
                        "origin_index is implausibly large"};
    if (path.p50.size() <= target) {
      path.p50.resize(target + 1, std::nan(""));
      path.p95.resize(target + 1, std::nan(""));
    }
    path.p50[target] = p50;
    path.p95[target] = p95;
    found = true;
  }
  if (!found)
    return InputError{fileLabel, 0, series,
                      "no forecast for this series at horizon " + std::to_string(horizon)};
  return path;
}

Parsed<ReplayForecastPath> readReplayOutput(const std::string& path, const std::string& series,
                                            int horizon) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return InputError{path, 0, "", "cannot open for reading"};
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return parseReplayOutput(buffer.str(), path, series, horizon);
}

}  // namespace Atoll::forecast
