#pragma once
// What a subsystem (telemetry, islands, forecaster, planner, transfers, and
// the daemon's own housekeeping) implements to be driven by atolld's tick.
//
// Every tick runs four phases in a fixed order, each across all subsystems in
// registration order: collect (read the kernel), forecast, plan, act (change
// the host, journaling each action through the ActionLog). A subsystem runs
// only the phases it declares. It has a time budget per tick; running past it
// is an overrun, reported in logs, metrics and status, and the tick goes on
// without it (TickScheduler).
#include <array>
#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string_view>

#include "runtime/ActionLog.h"
#include "util/Result.h"

namespace Atoll {

enum class Phase : uint8_t { Collect, Forecast, Plan, Act };
inline constexpr std::array kPhases = {Phase::Collect, Phase::Forecast, Phase::Plan, Phase::Act};
std::string_view phaseName(Phase phase);

struct TickContext {
  uint64_t tick = 0;
  std::chrono::steady_clock::time_point started;
  std::chrono::milliseconds interval{0};
  // When this subsystem's budget for the tick runs out; long work should check
  // it and stop early.
  std::chrono::steady_clock::time_point deadline;
};

class Subsystem {
 public:
  virtual ~Subsystem() = default;

  // Stable name: the key of [subsystems.NAME] and of metrics labels.
  virtual std::string_view name() const = 0;
  virtual bool runsIn(Phase phase) const = 0;
  // An error is reported for this tick; the next tick runs again.
  virtual Result<void> runPhase(Phase phase, const TickContext& context) = 0;

  // Called at start-up for each action this subsystem began and never
  // finished: inspect the host, then complete or roll back.
  virtual Result<ActionOutcome> recover(const PendingAction& action) {
    return Error::invalid("recover action", std::string(name()), action.kind,
                          "this subsystem takes no host actions");
  }

  // Subsystem-specific details for `atoll status`.
  virtual nlohmann::json describe() const { return nlohmann::json::object(); }
};

}  // namespace Atoll
