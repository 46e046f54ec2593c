#pragma once
// An island's cgroup limits as JSON keyed by the control files' own names
// ("cpu.weight", "memory.max", ...): the spelling of the daemon's desired
// state and of the island API bodies the CLI sends. Limits left unset are
// left out.
#include <nlohmann/json.hpp>

#include "numa/Island.h"

namespace Atoll::numa {

inline nlohmann::json limitsJson(const IslandLimits& limits) {
  nlohmann::json out = nlohmann::json::object();
  if (limits.cpuWeight) out["cpu.weight"] = *limits.cpuWeight;
  if (limits.cpuMax) out["cpu.max"] = *limits.cpuMax;
  if (limits.memoryMin) out["memory.min"] = *limits.memoryMin;
  if (limits.memoryLow) out["memory.low"] = *limits.memoryLow;
  if (limits.memoryHigh) out["memory.high"] = *limits.memoryHigh;
  if (limits.memoryMax) out["memory.max"] = *limits.memoryMax;
  if (limits.ioWeight) out["io.weight"] = *limits.ioWeight;
  return out;
}

}  // namespace Atoll::numa
