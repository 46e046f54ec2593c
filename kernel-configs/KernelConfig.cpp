#include "kernel-configs/KernelConfig.h"

#include <set>

#include "util/Fs.h"

namespace Atoll::capability {

namespace {

constexpr std::string_view kRequiredTag = "# required:";
constexpr std::string_view kRecommendedTag = "# recommended:";
constexpr std::string_view kNotSetSuffix = " is not set";

bool validOptionName(std::string_view name) {
  if (!name.starts_with("CONFIG_") || name.size() == 7) return false;
  for (char c : name)
    if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}

struct OptionLine {
  std::string name;
  std::string value;
};

// "CONFIG_X=v" or "# CONFIG_X is not set"; nullopt for any other line.
std::optional<OptionLine> parseOptionLine(std::string_view line) {
  if (line.starts_with("# CONFIG_") && line.ends_with(kNotSetSuffix)) {
    auto name = line.substr(2, line.size() - 2 - kNotSetSuffix.size());
    if (!validOptionName(name)) return std::nullopt;
    return OptionLine{std::string(name), "n"};
  }
  auto equals = line.find('=');
  if (equals == std::string_view::npos) return std::nullopt;
  auto name = line.substr(0, equals);
  auto value = line.substr(equals + 1);
  if (!validOptionName(name) || value.empty()) return std::nullopt;
  return OptionLine{std::string(name), std::string(value)};
}

std::string lineLabel(int number) {
  return "line " + std::to_string(number);
}

}  // namespace

Result<std::vector<FragmentOption>> parseFragment(std::string_view text,
                                                  const std::string& sourceName) {
  std::vector<FragmentOption> options;
  std::set<std::string, std::less<>> seen;
  std::optional<FragmentOption> pending;
  int number = 0;
  std::size_t start = 0;
  while (start < text.size()) {
    auto end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view raw = text.substr(start, end - start);
    std::string_view line = trim(raw);
    ++number;
    start = end + 1;

    std::optional<Requirement> tag;
    std::string_view why;
    if (line.starts_with(kRequiredTag)) {
      tag = Requirement::Required;
      why = trim(line.substr(kRequiredTag.size()));
    } else if (line.starts_with(kRecommendedTag)) {
      tag = Requirement::Recommended;
      why = trim(line.substr(kRecommendedTag.size()));
    }
    if (tag) {
      if (pending)
        return Error::invalid("parse", sourceName, std::string(line),
                              lineLabel(number) + ": annotation follows the annotation on " +
                                  lineLabel(pending->line) + " without an option between them");
      if (why.empty())
        return Error::invalid("parse", sourceName, std::string(line),
                              lineLabel(number) + ": annotation without a reason");
      pending = FragmentOption{{}, {}, *tag, std::string(why), number};
      continue;
    }

    auto option = parseOptionLine(line);
    if (!option) {
      bool comment = line.empty() || line.front() == '#';
      if (comment && !pending) continue;
      if (comment)
        return Error::invalid("parse", sourceName, std::string(line),
                              lineLabel(number) + ": the annotation on " +
                                  lineLabel(pending->line) +
                                  " must be followed directly by its option");
      return Error::invalid("parse", sourceName, std::string(line),
                            lineLabel(number) +
                                ": expected CONFIG_NAME=value, '# CONFIG_NAME is not set', "
                                "an annotation or a comment");
    }
    if (!pending)
      return Error::invalid("parse", sourceName, std::string(line),
                            lineLabel(number) + ": " + option->name +
                                " has no '# required:' or '# recommended:' line before it");
    if (!seen.insert(option->name).second)
      return Error::invalid("parse", sourceName, std::string(line),
                            lineLabel(number) + ": " + option->name + " appears twice");
    pending->name = option->name;
    pending->value = option->value;
    pending->line = number;
    options.push_back(std::move(*pending));
    pending.reset();
  }
  if (pending)
    return Error::invalid("parse", sourceName, {},
                          "the annotation on " + lineLabel(pending->line) + " has no option");
  return options;
}

Result<KernelConfig> parseKernelConfig(std::string_view text, const std::string& sourceName) {
  KernelConfig config;
  int number = 0;
  std::size_t start = 0;
  while (start < text.size()) {
    auto end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = trim(text.substr(start, end - start));
    ++number;
    start = end + 1;
    if (auto option = parseOptionLine(line)) {
      config.insert_or_assign(std::move(option->name), std::move(option->value));
      continue;
    }
    if (line.empty() || line.front() == '#') continue;
    return Error::invalid(
        "parse", sourceName, std::string(line),
        lineLabel(number) + ": expected CONFIG_NAME=value or '# CONFIG_NAME is not set'");
  }
  if (config.empty())
    return Error::invalid("parse", sourceName, {}, "no CONFIG_ options in the kernel config");
  return config;
}

bool optionSatisfied(std::string_view wanted, const std::optional<std::string>& actual) {
  if (wanted == "n") return !actual || *actual == "n";
  if (!actual) return false;
  if (wanted == "m") return *actual == "m" || *actual == "y";
  return *actual == wanted;
}

std::string OptionMismatch::describe() const {
  std::string have = !actual || *actual == "n" ? "not set" : *actual;
  std::string want = wanted.value == "n"   ? "not set"
                     : wanted.value == "m" ? "m or y"
                                           : wanted.value;
  return wanted.name + " (want " + want + ", have " + have + ")";
}

ConfigComparison compareConfig(const std::vector<FragmentOption>& fragment,
                               const KernelConfig& kernel) {
  ConfigComparison out;
  for (const auto& option : fragment) {
    ++out.checked;
    std::optional<std::string> actual;
    if (auto it = kernel.find(option.name); it != kernel.end()) actual = it->second;
    if (optionSatisfied(option.value, actual)) continue;
    auto& bucket =
        option.requirement == Requirement::Required ? out.requiredUnmet : out.recommendedUnmet;
    bucket.push_back(OptionMismatch{option, actual});
  }
  return out;
}

}  // namespace Atoll::capability
