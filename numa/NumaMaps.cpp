#include "numa/NumaMaps.h"

#include <charconv>

namespace Atoll {

namespace {

template <typename Number>
bool parseNumber(std::string_view text, Number& out, int base = 10) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out, base);
  return ec == std::errc() && end == text.data() + text.size();
}

Error malformedLine(const std::string& path, std::string_view line, std::string detail) {
  return Error::invalid("parse", path, std::string(line), std::move(detail));
}

// Applies one "key=value" or bare-flag token to `entry`. Keys this parser has
// no use for ("dirty=", "mapmax=", "heap", "stack", ...) are accepted and
// ignored; a malformed node count is an error.
Result<void> applyToken(std::string_view token, NumaMapsEntry& entry, const std::string& path,
                        std::string_view line) {
  auto eq = token.find('=');
  if (eq == std::string_view::npos) return ok();
  std::string_view key = token.substr(0, eq);
  std::string_view value = token.substr(eq + 1);
  if (key.size() > 1 && key[0] == 'N') {
    int node = 0;
    uint64_t pages = 0;
    if (!parseNumber(key.substr(1), node) || !parseNumber(value, pages)) {
      return malformedLine(path, line, "bad node count '" + std::string(token) + "'");
    }
    entry.pagesOnNode[node] = pages;
  } else if (key == "anon") {
    if (!parseNumber(value, entry.anonPages)) {
      return malformedLine(path, line, "bad anon count '" + std::string(token) + "'");
    }
  } else if (key == "kernelpagesize_kB") {
    if (!parseNumber(value, entry.kernelPageSizeKiB)) {
      return malformedLine(path, line, "bad page size '" + std::string(token) + "'");
    }
  } else if (key == "file") {
    entry.file = std::string(value);
  }
  return ok();
}

}  // namespace

Result<std::vector<NumaMapsEntry>> parseNumaMaps(std::string_view text, const std::string& path) {
  std::vector<NumaMapsEntry> entries;
  while (!text.empty()) {
    size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    if (line.empty()) continue;

    // "<start in hex> <policy> <token>..."; tokens are separated by single
    // spaces, paths have their spaces escaped by the kernel.
    std::vector<std::string_view> fields;
    for (std::string_view rest = line; !rest.empty();) {
      size_t space = rest.find(' ');
      if (space != 0) fields.push_back(rest.substr(0, space));
      rest.remove_prefix(space == std::string_view::npos ? rest.size() : space + 1);
    }
    if (fields.size() < 2) return malformedLine(path, line, "expected '<address> <policy> ...'");
    NumaMapsEntry entry;
    if (!parseNumber(fields[0], entry.start, 16)) {
      return malformedLine(path, line, "bad mapping address '" + std::string(fields[0]) + "'");
    }
    entry.policy = std::string(fields[1]);
    for (size_t i = 2; i < fields.size(); ++i) {
      auto applied = applyToken(fields[i], entry, path, line);
      if (!applied) return applied.error();
    }
    entries.push_back(std::move(entry));
  }
  return entries;
}

const NumaMapsEntry* findMapping(const std::vector<NumaMapsEntry>& entries, uint64_t start) {
  for (const auto& entry : entries) {
    if (entry.start == start) return &entry;
  }
  return nullptr;
}

}  // namespace Atoll
