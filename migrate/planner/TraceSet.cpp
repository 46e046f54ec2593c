#include "migrate/planner/TraceSet.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <map>

#include "util/Fs.h"

namespace Atoll::planner {

namespace {

bool parseNumber(std::string_view text, double& out) {
  text = trim(text);
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size() && std::isfinite(out);
}

// Splits on `separator`, trimming blanks and tabs around each field.
void splitFields(std::string_view line, char separator, std::vector<std::string_view>& out) {
  out.clear();
  size_t start = 0;
  while (true) {
    size_t end = line.find(separator, start);
    out.push_back(trim(line.substr(start, end == std::string_view::npos ? end : end - start)));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
}

// Iterates lines; returns false at the end.
bool nextLine(std::string_view content, size_t& pos, std::string_view& line) {
  if (pos >= content.size()) return false;
  size_t end = content.find('\n', pos);
  if (end == std::string_view::npos) end = content.size();
  line = content.substr(pos, end - pos);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  pos = end + 1;
  return true;
}

Error lineError(const std::string& label, uint64_t line, std::string_view value,
                const std::string& why) {
  return Error::invalid("parse trace", label + ":" + std::to_string(line), std::string(value), why);
}

}  // namespace

Result<WideTable> parseWideCsv(std::string_view content, const std::string& label) {
  WideTable table;
  size_t pos = 0;
  std::string_view line;
  std::vector<std::string_view> fields;
  if (!nextLine(content, pos, line)) return Error::invalid("parse trace", label, "", "empty file");
  splitFields(line, ',', fields);
  if (fields.empty() || fields[0] != "step_5min" || fields.size() < 2)
    return lineError(label, 1, line.substr(0, 40), "header must be step_5min,<vm>,...");
  for (size_t i = 1; i < fields.size(); ++i) table.names.emplace_back(fields[i]);
  table.cpuCores.resize(table.names.size());
  uint64_t lineNo = 1;
  while (nextLine(content, pos, line)) {
    ++lineNo;
    if (trim(line).empty()) continue;
    splitFields(line, ',', fields);
    if (fields.size() != table.names.size() + 1)
      return lineError(label, lineNo, line.substr(0, 40),
                       "expected " + std::to_string(table.names.size() + 1) + " fields, got " +
                           std::to_string(fields.size()));
    for (size_t i = 1; i < fields.size(); ++i) {
      double percent;
      if (!parseNumber(fields[i], percent) || percent < 0)
        return lineError(label, lineNo, fields[i],
                         "CPU % of " + table.names[i - 1] + " must be a number >= 0");
      table.cpuCores[i - 1].push_back(static_cast<float>(percent / 100.0));
    }
  }
  return table;
}

Result<BitbrainsSamples> parseBitbrainsCsv(std::string_view content, const std::string& label) {
  BitbrainsSamples out;
  size_t pos = 0;
  std::string_view line;
  std::vector<std::string_view> fields;
  if (!nextLine(content, pos, line)) return Error::invalid("parse trace", label, "", "empty file");
  splitFields(line, ';', fields);
  if (fields.size() != 11 || !fields[0].starts_with("Timestamp"))
    return lineError(label, 1, line.substr(0, 40),
                     "header must be the 11 Bitbrains columns starting with Timestamp");
  uint64_t lineNo = 1;
  while (nextLine(content, pos, line)) {
    ++lineNo;
    if (trim(line).empty()) continue;
    splitFields(line, ';', fields);
    if (fields.size() != 11)
      return lineError(label, lineNo, line.substr(0, 40),
                       "expected 11 fields, got " + std::to_string(fields.size()));
    double values[7];
    for (int i = 0; i < 7; ++i) {
      if (!parseNumber(fields[i], values[i]) || values[i] < 0)
        return lineError(label, lineNo, fields[i],
                         "field " + std::to_string(i + 1) + " must be a number >= 0");
    }
    const double cores = values[1], provisionedMhz = values[2], usedMhz = values[3];
    const double mhzPerCore = cores > 0 ? provisionedMhz / cores : 0;
    out.seconds.push_back(static_cast<int64_t>(values[0]));
    out.cpuCores.push_back(mhzPerCore > 0 ? static_cast<float>(usedMhz / mhzPerCore) : 0.0f);
    out.memoryBytes.push_back(static_cast<float>(values[6] * 1024.0));
  }
  return out;
}

TraceSet joinWideDays(const std::vector<WideTable>& days) {
  TraceSet set;
  set.source = "planetlab";
  if (days.empty()) return set;
  size_t slots = days.front().names.size();
  for (const auto& day : days) slots = std::min(slots, day.names.size());
  set.vms.resize(slots);
  for (size_t k = 0; k < slots; ++k) {
    TraceVm& vm = set.vms[k];
    vm.name = "slot" + std::to_string(k) + ":" + days.front().names[k];
    for (const auto& day : days)
      vm.cpuCores.insert(vm.cpuCores.end(), day.cpuCores[k].begin(), day.cpuCores[k].end());
  }
  set.steps = slots > 0 ? set.vms.front().cpuCores.size() : 0;
  for (auto& vm : set.vms) set.steps = std::min(set.steps, vm.cpuCores.size());
  for (auto& vm : set.vms) vm.cpuCores.resize(set.steps);
  return set;
}

TraceSet binBitbrains(const std::vector<std::string>& names,
                      const std::vector<BitbrainsSamples>& vms) {
  TraceSet set;
  set.source = "bitbrains";
  int64_t first = INT64_MAX, last = INT64_MIN;
  for (const auto& vm : vms)
    for (int64_t s : vm.seconds) {
      first = std::min(first, s);
      last = std::max(last, s);
    }
  if (first > last) return set;
  first -= first % kTraceStepSeconds;
  set.steps = static_cast<size_t>((last - first) / kTraceStepSeconds + 1);
  for (size_t v = 0; v < vms.size(); ++v) {
    TraceVm out;
    out.name = names[v];
    std::vector<double> cpuSum(set.steps, 0), memSum(set.steps, 0);
    std::vector<uint32_t> count(set.steps, 0);
    for (size_t i = 0; i < vms[v].seconds.size(); ++i) {
      const auto bin = static_cast<size_t>((vms[v].seconds[i] - first) / kTraceStepSeconds);
      cpuSum[bin] += vms[v].cpuCores[i];
      memSum[bin] += vms[v].memoryBytes[i];
      ++count[bin];
    }
    out.cpuCores.resize(set.steps);
    out.memoryBytes.resize(set.steps);
    float lastCpu = 0, lastMem = 0;
    for (size_t b = 0; b < set.steps; ++b) {
      if (count[b] > 0) {
        lastCpu = static_cast<float>(cpuSum[b] / count[b]);
        lastMem = static_cast<float>(memSum[b] / count[b]);
      }
      out.cpuCores[b] = lastCpu;
      out.memoryBytes[b] = lastMem;
    }
    set.vms.push_back(std::move(out));
  }
  return set;
}

Result<std::string> readMaybeGzip(const std::string& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) return Error::fromErrno("open", path, errno ? errno : ENOMEM);
  std::string content;
  char buffer[1 << 16];
  while (true) {
    int n = gzread(file, buffer, sizeof buffer);
    if (n < 0) {
      int code = 0;
      std::string why = gzerror(file, &code);
      gzclose(file);
      return Error::invalid("read", path, "", "gzip: " + why);
    }
    if (n == 0) break;
    content.append(buffer, static_cast<size_t>(n));
  }
  gzclose(file);
  return content;
}

Result<TraceSet> readTraceDir(const std::string& dir, size_t maxSteps) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return Error::invalid("read trace", dir, "", "not a directory");
  // Every *.csv / *.csv.gz below dir (two levels), sorted by path.
  std::vector<fs::path> files;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (it.depth() > 1) {
      it.disable_recursion_pending();
      continue;
    }
    const std::string name = it->path().filename().string();
    if (it->is_regular_file() && (name.ends_with(".csv") || name.ends_with(".csv.gz")))
      files.push_back(it->path());
  }
  if (ec) return Error::fromErrno("list", dir, ec.value());
  std::sort(files.begin(), files.end());
  if (files.empty()) return Error::invalid("read trace", dir, "", "no .csv or .csv.gz files");

  auto stemOf = [](const fs::path& p) {
    std::string name = p.filename().string();
    if (name.ends_with(".gz")) name.resize(name.size() - 3);
    if (name.ends_with(".csv")) name.resize(name.size() - 4);
    return name;
  };
  auto first = readMaybeGzip(files.front().string());
  if (!first) return first.error();
  TraceSet set;
  if (first->starts_with("step_5min")) {
    std::vector<WideTable> days;
    for (const auto& file : files) {
      auto content = readMaybeGzip(file.string());
      if (!content) return content.error();
      auto table = parseWideCsv(*content, file.string());
      if (!table) return table.error();
      days.push_back(std::move(*table));
    }
    set = joinWideDays(days);
  } else {
    std::map<std::string, BitbrainsSamples> byVm;
    for (const auto& file : files) {
      auto content = readMaybeGzip(file.string());
      if (!content) return content.error();
      auto samples = parseBitbrainsCsv(*content, file.string());
      if (!samples) return samples.error();
      BitbrainsSamples& vm = byVm[stemOf(file)];
      vm.seconds.insert(vm.seconds.end(), samples->seconds.begin(), samples->seconds.end());
      vm.cpuCores.insert(vm.cpuCores.end(), samples->cpuCores.begin(), samples->cpuCores.end());
      vm.memoryBytes.insert(vm.memoryBytes.end(), samples->memoryBytes.begin(),
                            samples->memoryBytes.end());
    }
    std::vector<std::string> names;
    std::vector<BitbrainsSamples> vms;
    for (auto& [name, samples] : byVm) {
      names.push_back(name);
      vms.push_back(std::move(samples));
    }
    set = binBitbrains(names, vms);
  }
  if (set.steps == 0 || set.vms.empty())
    return Error::invalid("read trace", dir, "", "the traces hold no samples");
  if (maxSteps > 0 && set.steps > maxSteps) {
    set.steps = maxSteps;
    for (auto& vm : set.vms) {
      vm.cpuCores.resize(maxSteps);
      if (!vm.memoryBytes.empty()) vm.memoryBytes.resize(maxSteps);
    }
  }
  return set;
}

}  // namespace Atoll::planner
