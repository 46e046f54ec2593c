#pragma once
// The subsystems atolld knows by name, with their default time budgets. The
// configuration accepts [subsystems.NAME] only for these names, so a typo is an
// error rather than a silently ignored table. Each subsystem that joins the
// daemon adds its entry here.
#include <array>
#include <chrono>
#include <string_view>

namespace Atoll {

struct SubsystemCatalogEntry {
  std::string_view name;
  std::chrono::milliseconds defaultBudget;
  std::string_view description;
};

inline constexpr std::array kSubsystemCatalog = {
    SubsystemCatalogEntry{"housekeeping", std::chrono::milliseconds(100),
                          "journal size accounting, snapshot and compaction"},
    SubsystemCatalogEntry{"self-metrics", std::chrono::milliseconds(20),
                          "the daemon's own CPU time, memory and threads from /proc/self/stat"},
};

}  // namespace Atoll
