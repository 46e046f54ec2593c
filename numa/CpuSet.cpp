#include "numa/CpuSet.h"

#include <algorithm>
#include <charconv>
#include <iterator>

#include "util/Fs.h"

namespace Atoll::numa {

namespace {

// Larger than any CPU or node number a kernel supports (NR_CPUS is at most
// 8192); it keeps "0-4000000000" from allocating gigabytes.
constexpr unsigned kMaxListedNumber = 1u << 16;

bool parseUnsigned(std::string_view text, unsigned& out) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

Result<CpuList> parseCpuList(std::string_view text, const std::string& what) {
  CpuList out;
  std::string_view rest = trim(text);
  while (!rest.empty()) {
    std::size_t comma = rest.find(',');
    // Spaces around items are allowed ("0, 8" as people write it in config
    // files); the kernel writes none.
    std::string_view range = trim(rest.substr(0, comma));
    rest.remove_prefix(comma == std::string_view::npos ? rest.size() : comma + 1);
    std::size_t dash = range.find('-');
    unsigned first = 0;
    unsigned last = 0;
    bool parsed = dash == std::string_view::npos
                      ? parseUnsigned(range, first) && parseUnsigned(range, last)
                      : parseUnsigned(trim(range.substr(0, dash)), first) &&
                            parseUnsigned(trim(range.substr(dash + 1)), last);
    if (!parsed || last < first || last >= kMaxListedNumber) {
      return Error::invalid("parse", what, std::string(text),
                            "bad range '" + std::string(range) +
                                "' (expected a list like 0-3,8 of numbers below " +
                                std::to_string(kMaxListedNumber) + ")");
    }
    for (unsigned value = first; value <= last; ++value) out.push_back(value);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

CpuList unionOf(const CpuList& a, const CpuList& b) {
  CpuList out;
  std::set_union(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

CpuList intersectionOf(const CpuList& a, const CpuList& b) {
  CpuList out;
  std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

CpuList differenceOf(const CpuList& a, const CpuList& b) {
  CpuList out;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

bool contains(const CpuList& set, unsigned value) {
  return std::binary_search(set.begin(), set.end(), value);
}

}  // namespace Atoll::numa
