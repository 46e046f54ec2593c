#pragma once
// Checks for the number options of the `atoll` verbs, run on the text before
// CLI11 converts it. CLI11 2.1 converts integers with strtoull/strtoll in
// base 0: "-1" given to an unsigned option becomes 18446744073709551615,
// "010" is octal 8 and "0x10" hex 16. Its floating-point conversion takes
// "nan" and "inf", and NaN passes CLI::Range (every comparison with it is
// false). Each refusal names the value.
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdlib>
#include <string>
#include <string_view>

namespace Atoll::cli {

namespace detail {

inline bool plainDigits(std::string_view text) {
  return !text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos &&
         (text.size() == 1 || text.front() != '0');
}

}  // namespace detail

// Counts, ids, PIDs, weights and bytes: plain decimal, no sign, no leading zero.
inline const CLI::Validator kDecimal(
    [](std::string& text) -> std::string {
      if (detail::plainDigits(text)) return {};
      return "'" + text + "' is not a decimal number (digits only, no sign or leading zero)";
    },
    "DECIMAL");

// Signed integers whose range the verb checks itself, naming the value:
// plain decimal with an optional '-'.
inline const CLI::Validator kSignedDecimal(
    [](std::string& text) -> std::string {
      std::string_view digits = text;
      if (!digits.empty() && digits.front() == '-') digits.remove_prefix(1);
      if (detail::plainDigits(digits)) return {};
      return "'" + text + "' is not a decimal integer (no leading zero)";
    },
    "INTEGER");

// Floating-point values: finite ones only ("nan", "inf" and overflowing
// ones such as "1e400" are refused).
inline const CLI::Validator kFiniteNumber(
    [](std::string& text) -> std::string {
      char* end = nullptr;
      const double value = std::strtod(text.c_str(), &end);
      if (!text.empty() && end == text.c_str() + text.size() && std::isfinite(value)) return {};
      return "'" + text + "' is not a finite number";
    },
    "NUMBER");

}  // namespace Atoll::cli
