#include "runtime/ProcStat.h"

#include <charconv>
#include <string>

namespace Atoll {

Result<ProcStat> parseProcStat(std::string_view line) {
  auto fail = [&](std::string detail) {
    return Error::invalid("parse", "/proc/self/stat", std::string(line.substr(0, 120)),
                          std::move(detail));
  };
  // The command name (field 2) is in parentheses and may contain both spaces
  // and ')'; the fields after it start after the last ')'.
  size_t close = line.rfind(')');
  if (close == std::string_view::npos) return fail("no ')' after the command name");
  std::string_view rest = line.substr(close + 1);
  // rest holds fields 3.. separated by single spaces.
  uint64_t values[25] = {};
  int field = 2;
  size_t pos = 0;
  while (field < 24) {
    while (pos < rest.size() && rest[pos] == ' ') ++pos;
    if (pos >= rest.size()) return fail("only " + std::to_string(field) + " fields");
    size_t end = rest.find_first_of(" \n", pos);
    if (end == std::string_view::npos) end = rest.size();
    ++field;
    std::string_view token = rest.substr(pos, end - pos);
    if (field == 14 || field == 15 || field == 20 || field == 24) {
      auto [ptr, ec] = std::from_chars(token.data(), token.data() + token.size(), values[field]);
      if (ec != std::errc() || ptr != token.data() + token.size())
        return fail("field " + std::to_string(field) + " '" + std::string(token) +
                    "' is not a number");
    }
    pos = end;
  }
  return ProcStat{values[14], values[15], values[20], values[24]};
}

}  // namespace Atoll
