#include "kernel-configs/Report.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace Atoll::capability {

Summary Report::summary() const {
  Summary out;
  for (const auto& feature : features) {
    switch (feature.status) {
      case FeatureStatus::Ok:
        ++out.ok;
        break;
      case FeatureStatus::Missing:
        ++out.missing;
        break;
      case FeatureStatus::Degraded:
        ++out.degraded;
        break;
    }
  }
  return out;
}

std::vector<std::string> Report::missingRequired() const {
  std::vector<std::string> names;
  for (const auto& feature : features)
    if (feature.required && feature.status == FeatureStatus::Missing) names.push_back(feature.name);
  return names;
}

std::string renderJson(const Report& report) {
  // Ordered so the JSON reads in the same order as the text table.
  nlohmann::ordered_json features = nlohmann::ordered_json::array();
  for (const auto& feature : report.features) {
    features.push_back({{"name", feature.name},
                        {"status", std::string(toString(feature.status))},
                        {"required", feature.required},
                        {"detail", feature.detail},
                        {"fix", feature.fix}});
  }
  Summary summary = report.summary();
  nlohmann::ordered_json out = {
      {"kernel", report.kernel},
      {"features", std::move(features)},
      {"summary",
       {{"ok", summary.ok}, {"missing", summary.missing}, {"degraded", summary.degraded}}}};
  // Replace invalid UTF-8 (details quote kernel and library messages) rather
  // than throwing halfway through a report.
  return out.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

namespace {

std::string padded(std::string_view text, std::size_t width) {
  std::string out(text);
  if (out.size() < width) out.append(width - out.size(), ' ');
  return out;
}

}  // namespace

std::string renderText(const Report& report) {
  std::size_t nameWidth = 7;
  for (const auto& feature : report.features) nameWidth = std::max(nameWidth, feature.name.size());
  nameWidth += 2;
  const std::size_t statusWidth = 10;
  const std::size_t requiredWidth = 13;
  const std::string indent(nameWidth + statusWidth + requiredWidth, ' ');

  std::string out = "kernel " + report.kernel + "\n\n";
  out += padded("FEATURE", nameWidth) + padded("STATUS", statusWidth) +
         padded("NEED", requiredWidth) + "DETAIL\n";
  for (const auto& feature : report.features) {
    out += padded(feature.name, nameWidth) + padded(toString(feature.status), statusWidth) +
           padded(feature.required ? "required" : "recommended", requiredWidth) + feature.detail +
           "\n";
    if (feature.status != FeatureStatus::Ok && !feature.fix.empty())
      out += indent + "fix: " + feature.fix + "\n";
  }
  Summary summary = report.summary();
  out += "\n" + std::to_string(summary.ok) + " ok, " + std::to_string(summary.missing) +
         " missing, " + std::to_string(summary.degraded) + " degraded\n";
  auto missing = report.missingRequired();
  if (missing.empty()) {
    out += "every required feature is present\n";
  } else {
    out += "required features missing:";
    for (const auto& name : missing) out += " " + name;
    out += "\n";
  }
  return out;
}

}  // namespace Atoll::capability
