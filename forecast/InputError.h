#pragma once
// Errors in forecaster input (replay CSVs, configuration): a value or a
// message naming the file, the line and the offending value. The forecaster
// depends on no other project folder, so it carries this small type instead
// of util/'s Result.
#include <cstdint>
#include <string>
#include <utility>
#include <variant>

namespace Atoll::forecast {

struct InputError {
  std::string file;
  uint64_t line = 0;  // 1-based line of the file; 0 when not about one line
  std::string value;  // the offending text, verbatim
  std::string reason;

  std::string message() const {
    std::string text = file;
    if (line > 0) text += ":" + std::to_string(line);
    text += ": " + reason;
    if (!value.empty() || line > 0) text += " (value '" + value + "')";
    return text;
  }
};

template <typename T>
class [[nodiscard]] Parsed {
 public:
  Parsed(T value) : state_(std::in_place_index<0>, std::move(value)) {}           // NOLINT
  Parsed(InputError error) : state_(std::in_place_index<1>, std::move(error)) {}  // NOLINT
  explicit operator bool() const { return state_.index() == 0; }
  T& value() { return std::get<0>(state_); }
  const T& value() const { return std::get<0>(state_); }
  const InputError& error() const { return std::get<1>(state_); }

 private:
  std::variant<T, InputError> state_;
};

}  // namespace Atoll::forecast
