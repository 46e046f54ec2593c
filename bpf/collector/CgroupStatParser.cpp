#include "bpf/collector/CgroupStatParser.h"

#include <charconv>
#include <cstdlib>
#include <vector>

#include "util/Fs.h"

namespace Atoll::telemetry {

namespace {

std::vector<std::string_view> splitWords(std::string_view line) {
  std::vector<std::string_view> words;
  size_t pos = 0;
  while (pos < line.size()) {
    size_t start = line.find_first_not_of(" \t", pos);
    if (start == std::string_view::npos) break;
    size_t end = line.find_first_of(" \t", start);
    if (end == std::string_view::npos) end = line.size();
    words.push_back(line.substr(start, end - start));
    pos = end;
  }
  return words;
}

template <typename Fn>
void forEachLine(std::string_view text, Fn&& fn) {
  while (!text.empty()) {
    size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    if (!trim(line).empty()) fn(trim(line));
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
}

std::optional<uint64_t> toU64(std::string_view word) {
  uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(word.data(), word.data() + word.size(), value);
  if (ec != std::errc() || ptr != word.data() + word.size()) return std::nullopt;
  return value;
}

std::optional<double> toDouble(std::string_view word) {
  // from_chars for double is in GCC 12's libstdc++; strtod needs a terminator.
  double value = 0;
  auto [ptr, ec] = std::from_chars(word.data(), word.data() + word.size(), value);
  if (ec != std::errc() || ptr != word.data() + word.size()) return std::nullopt;
  return value;
}

}  // namespace

Result<std::map<std::string, uint64_t, std::less<>>> parseKeyValues(std::string_view text,
                                                                    const std::string& source) {
  std::map<std::string, uint64_t, std::less<>> values;
  std::optional<Error> failure;
  forEachLine(text, [&](std::string_view line) {
    if (failure) return;
    auto words = splitWords(line);
    std::optional<uint64_t> value;
    if (words.size() == 2) value = toU64(words[1]);
    if (!value) {
      failure = Error::invalid("parse", source, std::string(line), "expected 'key number'");
      return;
    }
    values.emplace(std::string(words[0]), *value);
  });
  if (failure) return *failure;
  return values;
}

Result<CpuStat> parseCpuStat(std::string_view text, const std::string& source) {
  // Read every tick for every workload: a scan with no allocation.
  CpuStat stat;
  bool sawUsage = false;
  std::optional<Error> failure;
  forEachLine(text, [&](std::string_view line) {
    if (failure) return;
    size_t space = line.find_first_of(" \t");
    std::string_view key = line.substr(0, space);
    std::optional<uint64_t> value;
    if (space != std::string_view::npos) value = toU64(trim(line.substr(space)));
    if (!value) {
      failure = Error::invalid("parse", source, std::string(line), "expected 'key number'");
      return;
    }
    if (key == "usage_usec") {
      stat.usageUsec = *value;
      sawUsage = true;
    } else if (key == "user_usec") {
      stat.userUsec = *value;
    } else if (key == "system_usec") {
      stat.systemUsec = *value;
    }
  });
  if (failure) return *failure;
  if (!sawUsage)
    return Error::invalid("parse", source, std::string(text.substr(0, 80)), "no usage_usec line");
  return stat;
}

Result<uint64_t> parseSingleValue(std::string_view text, const std::string& source) {
  auto value = toU64(trim(text));
  if (!value) return Error::invalid("parse", source, std::string(trim(text)), "expected a number");
  return *value;
}

Result<Pressure> parsePressure(std::string_view text, const std::string& source) {
  Pressure pressure;
  bool sawSome = false;
  std::optional<Error> failure;
  forEachLine(text, [&](std::string_view line) {
    if (failure) return;
    auto words = splitWords(line);
    PressureLine parsed;
    int fields = 0;
    for (size_t i = 1; i < words.size(); ++i) {
      auto eq = words[i].find('=');
      if (eq == std::string_view::npos) continue;
      std::string_view key = words[i].substr(0, eq);
      std::string_view value = words[i].substr(eq + 1);
      std::optional<double> number;
      if (key == "total") {
        auto total = toU64(value);
        if (total) {
          parsed.totalUsec = *total;
          ++fields;
          continue;
        }
      } else {
        number = toDouble(value);
      }
      if (!number) {
        failure = Error::invalid("parse", source, std::string(line), "bad PSI field");
        return;
      }
      if (key == "avg10") parsed.avg10 = *number, ++fields;
      if (key == "avg60") parsed.avg60 = *number, ++fields;
      if (key == "avg300") parsed.avg300 = *number, ++fields;
    }
    if (words.empty() || fields != 4) {
      failure = Error::invalid("parse", source, std::string(line),
                               "expected 'some|full avg10= avg60= avg300= total='");
      return;
    }
    if (words[0] == "some") {
      pressure.some = parsed;
      sawSome = true;
    } else if (words[0] == "full") {
      pressure.full = parsed;
    } else {
      failure = Error::invalid("parse", source, std::string(line), "line is not some/full");
    }
  });
  if (failure) return *failure;
  if (!sawSome) return Error::invalid("parse", source, std::string(text), "no 'some' line");
  return pressure;
}

}  // namespace Atoll::telemetry
