#pragma once
// Reading a configuration parse's errors in the config tests: all of them as
// text for a failure message, or the one about a key.
#include <string>

#include "runtime/Config.h"

namespace Atoll::test {

inline std::string errorsOf(const ConfigParse& parsed) {
  std::string out;
  for (const auto& e : parsed.errors) out += e.format() + "\n";
  return out;
}

inline const ConfigError* findError(const ConfigParse& parsed, const std::string& key) {
  for (const auto& e : parsed.errors)
    if (e.key == key) return &e;
  return nullptr;
}

}  // namespace Atoll::test
