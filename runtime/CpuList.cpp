#include "runtime/CpuList.h"

#include <algorithm>
#include <charconv>

#include "util/Fs.h"

namespace Atoll {

namespace {

Error listError(std::string_view text, std::string detail) {
  return Error::invalid("parse cpu list", "", std::string(text), std::move(detail));
}

bool parseIndex(std::string_view digits, unsigned& out) {
  if (digits.empty()) return false;
  for (char c : digits)
    if (c < '0' || c > '9') return false;
  unsigned long long value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec != std::errc() || end != digits.data() + digits.size()) return false;
  if (value > CpuSet::kMaxIndex) return false;
  out = static_cast<unsigned>(value);
  return true;
}

}  // namespace

Result<CpuSet> CpuSet::parse(std::string_view text) {
  std::string_view rest = trim(text);
  if (rest.empty()) return listError(text, "empty list");
  std::vector<unsigned> out;
  while (!rest.empty()) {
    size_t comma = rest.find(',');
    std::string_view item = trim(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    if (item.empty()) return listError(text, "empty item between commas");
    size_t dash = item.find('-');
    unsigned first = 0;
    unsigned last = 0;
    std::string bound = "an index 0.." + std::to_string(kMaxIndex);
    if (dash == std::string_view::npos) {
      if (!parseIndex(item, first))
        return listError(text, "'" + std::string(item) + "' is not " + bound);
      last = first;
    } else {
      std::string_view low = trim(item.substr(0, dash));
      std::string_view high = trim(item.substr(dash + 1));
      if (!parseIndex(low, first) || !parseIndex(high, last))
        return listError(text, "'" + std::string(item) + "' is not a range of " + bound);
      if (last < first) return listError(text, "range '" + std::string(item) + "' is reversed");
    }
    for (unsigned i = first; i <= last; ++i) out.push_back(i);
    if (comma == std::string_view::npos) break;
    if (rest.empty()) return listError(text, "trailing comma");
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return CpuSet(std::move(out));
}

Result<CpuSet> CpuSet::fromIndices(const std::vector<long long>& indices) {
  if (indices.empty()) return listError("[]", "empty list");
  std::vector<unsigned> out;
  for (long long index : indices) {
    if (index < 0 || index > static_cast<long long>(kMaxIndex))
      return listError(std::to_string(index), "index out of range 0.." + std::to_string(kMaxIndex));
    out.push_back(static_cast<unsigned>(index));
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return CpuSet(std::move(out));
}

CpuSet CpuSet::intersect(const CpuSet& other) const {
  std::vector<unsigned> out;
  std::set_intersection(indices_.begin(), indices_.end(), other.indices_.begin(),
                        other.indices_.end(), std::back_inserter(out));
  return CpuSet(std::move(out));
}

std::string CpuSet::toString() const {
  std::string out;
  size_t i = 0;
  while (i < indices_.size()) {
    size_t j = i;
    while (j + 1 < indices_.size() && indices_[j + 1] == indices_[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(indices_[i]);
    if (j > i) out += "-" + std::to_string(indices_[j]);
    i = j + 1;
  }
  return out;
}

}  // namespace Atoll
