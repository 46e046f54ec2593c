#include "kernel-configs/MountInfo.h"

#include "util/Fs.h"

namespace Atoll::capability {

namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string decodeOctalEscapes(std::string_view field) {
  auto octal = [](char c) { return c >= '0' && c <= '7'; };
  std::string out;
  out.reserve(field.size());
  for (std::size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size() && octal(field[i + 1]) && octal(field[i + 2]) &&
        octal(field[i + 3])) {
      out += static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 +
                               (field[i + 3] - '0'));
      i += 3;
      continue;
    }
    out += field[i];
  }
  return out;
}

std::vector<std::string_view> splitSpaces(std::string_view line) {
  std::vector<std::string_view> fields;
  std::size_t pos = 0;
  while (pos < line.size()) {
    auto next = line.find(' ', pos);
    if (next == std::string_view::npos) next = line.size();
    if (next > pos) fields.push_back(line.substr(pos, next - pos));
    pos = next + 1;
  }
  return fields;
}

}  // namespace

Result<std::vector<MountEntry>> parseMountInfo(std::string_view text,
                                               const std::string& sourceName) {
  std::vector<MountEntry> mounts;
  int number = 0;
  std::size_t start = 0;
  while (start < text.size()) {
    auto end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = trim(text.substr(start, end - start));
    start = end + 1;
    ++number;
    if (line.empty()) continue;
    auto fields = splitSpaces(line);
    // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
    std::size_t separator = 6;
    while (separator < fields.size() && fields[separator] != "-") ++separator;
    if (fields.size() < 6 || separator + 2 >= fields.size())
      return Error::invalid("parse", sourceName, std::string(line),
                            "line " + std::to_string(number) +
                                ": expected 'id parent dev root mountpoint options ... - fstype "
                                "source options'");
    mounts.push_back(MountEntry{decodeOctalEscapes(fields[3]), decodeOctalEscapes(fields[4]),
                                std::string(fields[separator + 1]),
                                decodeOctalEscapes(fields[separator + 2])});
  }
  return mounts;
}

std::optional<MountEntry> findCgroup2Mount(const std::vector<MountEntry>& mounts) {
  for (std::string_view preferred : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"})
    for (const auto& mount : mounts)
      if (mount.fsType == "cgroup2" && mount.mountPoint == preferred) return mount;
  for (const auto& mount : mounts)
    if (mount.fsType == "cgroup2") return mount;
  return std::nullopt;
}

bool hasCgroup1Mounts(const std::vector<MountEntry>& mounts) {
  for (const auto& mount : mounts)
    if (mount.fsType == "cgroup") return true;
  return false;
}

}  // namespace Atoll::capability
