#include "numa/MemoryMove.h"

#include <sstream>

#include "numa/CpuSet.h"

namespace Atoll::numa {

namespace {

constexpr const char* kFromNodes = "from_nodes";
constexpr const char* kToNodes = "to_nodes";
constexpr const char* kBytesMoved = "bytes_moved";
constexpr const char* kMilliseconds = "milliseconds";
constexpr const char* kRevision = "revision";
constexpr const char* kFinishedUnixMs = "finished_unix_ms";
constexpr const char* kError = "error";

Error badMove(const std::string& where, const nlohmann::json& value, std::string detail) {
  return Error::invalid("read memory move", where, value.dump(), std::move(detail));
}

}  // namespace

std::vector<MemoryNodeChange> memoryNodeChanges(const std::vector<Island>& current,
                                                const std::vector<Island>& target) {
  std::vector<MemoryNodeChange> out;
  for (const auto& wanted : target)
    for (const auto& now : current)
      if (now.name == wanted.name && now.memNodes != wanted.memNodes)
        out.push_back({wanted.name, now.memNodes, wanted.memNodes});
  return out;
}

MemoryMove memoryMoveOf(const PageMoveReport& report, CpuList fromNodes, CpuList toNodes,
                        std::uint64_t revision, std::int64_t finishedUnixMs) {
  MemoryMove move;
  move.fromNodes = std::move(fromNodes);
  move.toNodes = std::move(toNodes);
  move.bytesMoved = report.bytesMoved;
  move.milliseconds = std::chrono::duration<double, std::milli>(report.took).count();
  move.revision = revision;
  move.finishedUnixMs = finishedUnixMs;
  return move;
}

nlohmann::json memoryMoveJson(const MemoryMove& move) {
  return {{kFromNodes, formatCpuList(move.fromNodes)},
          {kToNodes, formatCpuList(move.toNodes)},
          {kBytesMoved, move.bytesMoved},
          {kMilliseconds, move.milliseconds},
          {kRevision, move.revision},
          {kFinishedUnixMs, move.finishedUnixMs},
          {kError, move.error.empty() ? nlohmann::json(nullptr) : nlohmann::json(move.error)}};
}

Result<MemoryMove> parseMemoryMoveJson(const nlohmann::json& value, const std::string& where) {
  if (!value.is_object()) return badMove(where, value, "a memory move is a JSON object");
  MemoryMove move;
  for (const char* key : {kFromNodes, kToNodes}) {
    if (!value.contains(key) || !value[key].is_string())
      return badMove(where, value, std::string("\"") + key + "\" must be a node list string");
    auto nodes = parseCpuList(value[key].get<std::string>(), where + " " + key);
    if (!nodes) return nodes.error();
    (std::string_view(key) == kFromNodes ? move.fromNodes : move.toNodes) = std::move(*nodes);
  }
  for (const char* key : {kBytesMoved, kRevision}) {
    if (!value.contains(key) || !value[key].is_number_unsigned())
      return badMove(where, value,
                     std::string("\"") + key + "\" must be a non-negative integer, not " +
                         (value.contains(key) ? value[key].dump() : std::string("missing")));
    (std::string_view(key) == kBytesMoved ? move.bytesMoved : move.revision) =
        value[key].get<std::uint64_t>();
  }
  if (!value.contains(kMilliseconds) || !value[kMilliseconds].is_number() ||
      value[kMilliseconds].get<double>() < 0)
    return badMove(where, value, "\"milliseconds\" must be a non-negative number");
  move.milliseconds = value[kMilliseconds].get<double>();
  if (value.contains(kFinishedUnixMs)) {
    if (!value[kFinishedUnixMs].is_number_integer())
      return badMove(where, value, "\"finished_unix_ms\" must be an integer");
    move.finishedUnixMs = value[kFinishedUnixMs].get<std::int64_t>();
  }
  if (value.contains(kError) && !value[kError].is_null()) {
    if (!value[kError].is_string())
      return badMove(where, value, "\"error\" must be a string or null");
    move.error = value[kError].get<std::string>();
  }
  return move;
}

std::string describePageMove(std::uint64_t bytesMoved, double milliseconds) {
  std::ostringstream out;
  out << "moved " << bytesMoved << " bytes of members' memory in " << milliseconds << " ms";
  return out.str();
}

}  // namespace Atoll::numa
