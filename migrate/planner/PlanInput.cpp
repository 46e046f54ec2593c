#include "migrate/planner/PlanInput.h"

namespace Atoll::planner {

std::string_view flexibilityName(Flexibility flexibility) {
  switch (flexibility) {
    case Flexibility::Pinned:
      return "pinned";
    case Flexibility::Critical:
      return "critical";
    case Flexibility::Flexible:
      return "flexible";
  }
  return "flexible";
}

std::optional<Flexibility> parseFlexibility(std::string_view text) {
  for (auto f : {Flexibility::Pinned, Flexibility::Critical, Flexibility::Flexible})
    if (text == flexibilityName(f)) return f;
  return std::nullopt;
}

std::string_view modeName(Mode mode) {
  return mode == Mode::Enforce ? "enforce" : "observe";
}

std::optional<Mode> parseMode(std::string_view text) {
  if (text == "observe") return Mode::Observe;
  if (text == "enforce") return Mode::Enforce;
  return std::nullopt;
}

}  // namespace Atoll::planner
