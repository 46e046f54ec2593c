#include "numa/CgroupV2.h"

#include <algorithm>
#include <charconv>

namespace Atoll::numa {

std::vector<std::string> parseWordList(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    std::size_t end = text.find_first_of(" \t\n");
    if (end != 0) out.emplace_back(text.substr(0, end));
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
  }
  return out;
}

Result<std::vector<pid_t>> parsePidList(std::string_view text, const std::string& path) {
  std::vector<pid_t> out;
  for (const auto& word : parseWordList(text)) {
    pid_t pid = 0;
    auto [end, ec] = std::from_chars(word.data(), word.data() + word.size(), pid);
    if (ec != std::errc() || end != word.data() + word.size() || pid <= 0)
      return Error::invalid("parse", path, word, "not a process id");
    out.push_back(pid);
  }
  return out;
}

std::string partitionProblem(std::string_view text) {
  text = trim(text);
  std::size_t invalid = text.find(" invalid");
  if (invalid == std::string_view::npos) return {};
  std::string_view reason = trim(text.substr(invalid + 8));
  if (reason.size() >= 2 && reason.front() == '(' && reason.back() == ')')
    reason = reason.substr(1, reason.size() - 2);
  return reason.empty() ? std::string(text) : std::string(reason);
}

std::string ioDefaultWeight(std::string_view text) {
  auto words = parseWordList(text);
  for (std::size_t i = 0; i + 1 < words.size(); ++i)
    if (words[i] == "default") return words[i + 1];
  return {};
}

std::optional<std::uint64_t> parseMemoryValue(std::string_view text) {
  text = trim(text);
  if (text == "max") return std::nullopt;
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

Result<CgroupV2> CgroupV2::open(const std::string& path) {
  auto dir = Dir::open(path);
  if (!dir) return dir.error();
  if (!dir->exists(cgroupfile::kProcs))
    return Error::invalid("open cgroup", path, {}, "no cgroup.procs: not a cgroup directory");
  return CgroupV2(std::move(dir.value()));
}

Result<std::string> CgroupV2::read(std::string_view file) const {
  auto text = dir_.readFile(file);
  if (!text) return text.error();
  return std::string(trim(*text));
}

Result<void> CgroupV2::write(std::string_view file, std::string_view value) const {
  auto written = dir_.writeFile(file, value);
  if (written || !written.error().value.empty()) return written;
  // Opening the control file failed: the error still names the value.
  Error error = written.error();
  error.operation = "write";
  error.value = std::string(value);
  return error;
}

Result<std::vector<std::string>> CgroupV2::controllers() const {
  auto text = read(cgroupfile::kControllers);
  if (!text) return text.error();
  return parseWordList(*text);
}

Result<std::vector<std::string>> CgroupV2::enabledControllers() const {
  auto text = read(cgroupfile::kSubtreeControl);
  if (!text) return text.error();
  return parseWordList(*text);
}

Result<void> CgroupV2::enableControllers(const std::vector<std::string>& names) const {
  auto enabled = enabledControllers();
  if (!enabled) return enabled.error();
  std::string change;
  for (const auto& name : names) {
    if (std::find(enabled->begin(), enabled->end(), name) != enabled->end()) continue;
    change += (change.empty() ? "+" : " +") + name;
  }
  if (change.empty()) return ok();
  return write(cgroupfile::kSubtreeControl, change);
}

Result<std::vector<pid_t>> CgroupV2::processes() const {
  auto text = dir_.readFile(cgroupfile::kProcs);
  if (!text) return text.error();
  return parsePidList(*text, path() + "/" + std::string(cgroupfile::kProcs));
}

Result<void> CgroupV2::moveProcess(pid_t pid) const {
  return write(cgroupfile::kProcs, std::to_string(pid));
}

}  // namespace Atoll::numa
