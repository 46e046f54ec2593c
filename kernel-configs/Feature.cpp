#include "kernel-configs/Feature.h"

#include <utility>

namespace Atoll::capability {

std::string_view toString(FeatureStatus status) {
  switch (status) {
    case FeatureStatus::Ok:
      return "ok";
    case FeatureStatus::Missing:
      return "missing";
    case FeatureStatus::Degraded:
      return "degraded";
  }
  return "missing";
}

Feature Feature::ok(std::string name, bool required, std::string detail) {
  return Feature{std::move(name), FeatureStatus::Ok, required, std::move(detail), {}};
}

Feature Feature::absent(std::string name, bool required, std::string detail, std::string fix) {
  return Feature{std::move(name), required ? FeatureStatus::Missing : FeatureStatus::Degraded,
                 required, std::move(detail), std::move(fix)};
}

Feature Feature::degraded(std::string name, bool required, std::string detail, std::string fix) {
  return Feature{std::move(name), FeatureStatus::Degraded, required, std::move(detail),
                 std::move(fix)};
}

}  // namespace Atoll::capability
