#include "forecast/ReplayInput.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

namespace Atoll::forecast {

namespace {

std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r'))
    text.remove_suffix(1);
  return text;
}

bool parseNumber(std::string_view text, double& out) {
  if (text.empty()) return false;
  if (text.front() == '+') text.remove_prefix(1);
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

bool parseDigits(std::string_view text, int& out) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
int64_t daysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

}  // namespace

bool parseTimestamp(std::string_view text, double& seconds) {
  text = trim(text);
  if (text.size() >= 16 && text[4] == '-' && text[7] == '-' &&
      (text[10] == 'T' || text[10] == ' ')) {
    if (text.back() == 'Z') text.remove_suffix(1);
    int year, month, day, hour, minute, second = 0;
    if (!parseDigits(text.substr(0, 4), year) || !parseDigits(text.substr(5, 2), month) ||
        !parseDigits(text.substr(8, 2), day) || text[13] != ':' ||
        !parseDigits(text.substr(11, 2), hour) || !parseDigits(text.substr(14, 2), minute))
      return false;
    double fraction = 0;
    if (text.size() > 16) {
      if (text[16] != ':') return false;
      double secondsField;
      if (!parseNumber(text.substr(17), secondsField) || secondsField < 0 || secondsField >= 61)
        return false;
      second = static_cast<int>(secondsField);
      fraction = secondsField - second;
    }
    if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59) return false;
    seconds = double(daysFromCivil(year, unsigned(month), unsigned(day))) * 86400.0 +
              hour * 3600.0 + minute * 60.0 + second + fraction;
    return true;
  }
  return parseNumber(text, seconds) && std::isfinite(seconds);
}

Parsed<ReplaySeries> parseReplayCsv(std::string_view content, const std::string& fileLabel,
                                    const ReplayInputRules& rules) {
  ReplaySeries series;
  std::filesystem::path path(fileLabel);
  series.name = path.extension() == ".csv" ? path.stem().string() : path.filename().string();
  uint64_t line = 0;
  size_t pos = 0;
  bool headerSeen = false;
  double step = 0;
  while (pos < content.size()) {
    size_t end = content.find('\n', pos);
    if (end == std::string_view::npos) end = content.size();
    std::string_view text = trim(content.substr(pos, end - pos));
    pos = end + 1;
    ++line;
    if (!headerSeen) {
      if (line == 1 && text.size() >= 3 && text.substr(0, 3) == "\xEF\xBB\xBF")
        text.remove_prefix(3);
      const size_t comma = text.find(',');
      if (comma == std::string_view::npos || trim(text.substr(0, comma)) != "timestamp" ||
          trim(text.substr(comma + 1)) != "value")
        return InputError{fileLabel, line, std::string(text),
                          "header must be exactly 'timestamp,value'"};
      headerSeen = true;
      continue;
    }
    if (text.empty()) {
      if (pos >= content.size()) break;  // trailing newline
      return InputError{fileLabel, line, "", "empty line inside the data"};
    }
    const size_t comma = text.find(',');
    if (comma == std::string_view::npos || text.find(',', comma + 1) != std::string_view::npos)
      return InputError{fileLabel, line, std::string(text),
                        "a row must have exactly two fields: timestamp,value"};
    const std::string_view timestampText = trim(text.substr(0, comma));
    const std::string_view valueText = trim(text.substr(comma + 1));
    double timestamp;
    if (!parseTimestamp(timestampText, timestamp))
      return InputError{fileLabel, line, std::string(timestampText),
                        "timestamp is neither UNIX seconds nor ISO 8601"};
    double value;
    if (!parseNumber(valueText, value))
      return InputError{fileLabel, line, std::string(valueText), "value is not a number"};
    if (!std::isfinite(value))
      return InputError{fileLabel, line, std::string(valueText), "value is not finite"};
    if (value < 0)
      return InputError{fileLabel, line, std::string(valueText), "demand cannot be negative"};
    if (!series.timestamps.empty()) {
      const double interval = timestamp - series.timestamps.back();
      if (interval == 0)
        return InputError{fileLabel, line, std::string(timestampText), "duplicated timestamp"};
      if (interval < 0)
        return InputError{fileLabel, line, std::string(timestampText), "timestamp goes backwards"};
      if (step == 0) {
        step = interval;
      } else if (interval > rules.maxGapSteps * step) {
        return InputError{fileLabel, line, std::string(timestampText),
                          "gap of " + std::to_string(interval / step) +
                              " steps exceeds the limit of " + std::to_string(rules.maxGapSteps)};
      }
    }
    series.timestamps.push_back(timestamp);
    series.values.push_back(value);
  }
  if (!headerSeen) return InputError{fileLabel, 0, "", "empty file: no 'timestamp,value' header"};
  return series;
}

Parsed<ReplaySeries> readReplayCsv(const std::string& path, const ReplayInputRules& rules) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return InputError{path, 0, "", "cannot open for reading"};
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return InputError{path, 0, "", "read failed"};
  return parseReplayCsv(buffer.str(), path, rules);
}

Parsed<std::vector<std::string>> collectReplayInputs(const std::vector<std::string>& paths) {
  std::vector<std::string> files;
  for (const std::string& path : paths) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) {
      std::vector<std::string> inDir;
      for (const auto& entry : std::filesystem::directory_iterator(path, ec))
        if (entry.path().extension() == ".csv") inDir.push_back(entry.path().string());
      if (ec) return InputError{path, 0, "", "cannot list directory: " + ec.message()};
      if (inDir.empty()) return InputError{path, 0, "", "directory holds no .csv file"};
      std::sort(inDir.begin(), inDir.end());
      files.insert(files.end(), inDir.begin(), inDir.end());
    } else if (std::filesystem::is_regular_file(path, ec)) {
      files.push_back(path);
    } else {
      return InputError{path, 0, "", "no such file or directory"};
    }
  }
  return files;
}

}  // namespace Atoll::forecast
