#pragma once
// Kernel configuration text: Atoll's fragment (kernel-configs/atoll.config)
// and a kernel's full .config, parsed and compared. Pure logic, no I/O.
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/Result.h"

namespace Atoll::capability {

enum class Requirement { Required, Recommended };

// One option of the fragment, with the annotation line that precedes it.
struct FragmentOption {
  std::string name;   // "CONFIG_BPF_SYSCALL"
  std::string value;  // "y", "m", "n" (from "# CONFIG_X is not set"), or a literal
  Requirement requirement = Requirement::Required;
  std::string why;
  int line = 0;
};

// Parses the fragment format documented at the top of atoll.config: every
// option line is immediately preceded by "# required: why" or
// "# recommended: why". sourceName names the text in errors.
Result<std::vector<FragmentOption>> parseFragment(std::string_view text,
                                                  const std::string& sourceName);

// A kernel's configuration: option name -> value. "# CONFIG_X is not set"
// becomes "n"; an option absent from the map is not set either.
using KernelConfig = std::map<std::string, std::string, std::less<>>;

Result<KernelConfig> parseKernelConfig(std::string_view text, const std::string& sourceName);

// Whether a kernel value meets a fragment value: "m" is met by a module or a
// built-in, "y" only by a built-in, "n" by an unset option, and anything
// else by the identical literal. actual is nullopt when the kernel lacks the
// option entirely.
bool optionSatisfied(std::string_view wanted, const std::optional<std::string>& actual);

struct OptionMismatch {
  FragmentOption wanted;
  std::optional<std::string> actual;  // nullopt: not in the kernel's config at all

  // "CONFIG_TLS (want m, have not set)"
  std::string describe() const;
};

struct ConfigComparison {
  std::size_t checked = 0;
  std::vector<OptionMismatch> requiredUnmet;
  std::vector<OptionMismatch> recommendedUnmet;
};

ConfigComparison compareConfig(const std::vector<FragmentOption>& fragment,
                               const KernelConfig& kernel);

}  // namespace Atoll::capability
