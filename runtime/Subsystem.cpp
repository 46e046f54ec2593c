#include "runtime/Subsystem.h"

namespace Atoll {

std::string_view phaseName(Phase phase) {
  switch (phase) {
    case Phase::Collect:
      return "collect";
    case Phase::Forecast:
      return "forecast";
    case Phase::Plan:
      return "plan";
    case Phase::Act:
      return "act";
  }
  return "unknown";
}

}  // namespace Atoll
