#pragma once
// The last change of an island's memory nodes as atolld made it: from which
// nodes to which, how many bytes of its members' pages moved and how long
// that took, the desired-state revision that asked for it, and the error if
// it failed. One JSON form, written by atolld's islands subsystem into
// GET /v1/islands and read back by `atoll island show|resize`.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "numa/Island.h"
#include "numa/PageMigration.h"
#include "numa/Topology.h"
#include "util/Result.h"

namespace Atoll::numa {

struct MemoryMove {
  CpuList fromNodes;
  CpuList toNodes;
  std::uint64_t bytesMoved = 0;
  double milliseconds = 0;
  // Revision of the desired-state entry that asked for the move; 0 for
  // islands of the configuration file.
  std::uint64_t revision = 0;
  std::int64_t finishedUnixMs = 0;
  std::string error;  // empty when the move succeeded

  bool operator==(const MemoryMove&) const = default;
};

// An island present in both sets whose memory nodes differ.
struct MemoryNodeChange {
  std::string island;
  CpuList fromNodes;
  CpuList toNodes;
};
std::vector<MemoryNodeChange> memoryNodeChanges(const std::vector<Island>& current,
                                                const std::vector<Island>& target);

MemoryMove memoryMoveOf(const PageMoveReport& report, CpuList fromNodes, CpuList toNodes,
                        std::uint64_t revision, std::int64_t finishedUnixMs);

nlohmann::json memoryMoveJson(const MemoryMove& move);
// Errors name the offending value; `where` says where it was read.
Result<MemoryMove> parseMemoryMoveJson(const nlohmann::json& value, const std::string& where);

// "moved N bytes of members' memory in T ms": the wording of every path
// that moves an island's memory.
std::string describePageMove(std::uint64_t bytesMoved, double milliseconds);

}  // namespace Atoll::numa
