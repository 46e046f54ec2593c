#pragma once
// Table cells for the verbs that print daemon replies for people: a JSON
// value the daemon may leave out or set to null prints as "-", never as an
// exception or "null".
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

namespace Atoll {

inline std::string numberCell(const nlohmann::json& value, const char* format = "%.3f") {
  if (!value.is_number()) return "-";
  char buffer[48];
  std::snprintf(buffer, sizeof buffer, format, value.get<double>());
  return buffer;
}

inline std::string textCell(const nlohmann::json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return "-";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

}  // namespace Atoll
