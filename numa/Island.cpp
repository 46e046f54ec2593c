#include "numa/Island.h"

#include <set>

#include "numa/CpuSet.h"

namespace Atoll::numa {

namespace {

constexpr std::size_t kMaxNameLength = 64;
constexpr unsigned kMinWeight = 1;
constexpr unsigned kMaxWeight = 10000;

Error invalidIsland(const std::string& island, std::string value, std::string detail) {
  return Error::invalid("validate island", island, std::move(value), std::move(detail));
}

bool isNameCharacter(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.';
}

// "max" or "QUOTA" or "QUOTA PERIOD", positive microseconds, quota >= 1000
// as the kernel requires.
bool isValidCpuMax(std::string_view text) {
  auto number = [](std::string_view digits, unsigned long long& out) {
    if (digits.empty() || digits.size() > 12) return false;
    out = 0;
    for (char c : digits) {
      if (c < '0' || c > '9') return false;
      out = out * 10 + static_cast<unsigned>(c - '0');
    }
    return true;
  };
  std::size_t space = text.find(' ');
  std::string_view quota = text.substr(0, space);
  unsigned long long value = 0;
  if (quota != "max" && (!number(quota, value) || value < 1000)) return false;
  if (space == std::string_view::npos) return true;
  return number(text.substr(space + 1), value) && value >= 1000 && value <= 1000000;
}

}  // namespace

std::string_view exclusivityName(Exclusivity exclusivity) {
  switch (exclusivity) {
    case Exclusivity::Root:
      return "root";
    case Exclusivity::Isolated:
      return "isolated";
    case Exclusivity::Shared:
      break;
  }
  return "member";
}

std::optional<Exclusivity> parseExclusivity(std::string_view text) {
  if (text == "member" || text == "shared") return Exclusivity::Shared;
  if (text == "root") return Exclusivity::Root;
  if (text == "isolated") return Exclusivity::Isolated;
  return std::nullopt;
}

Result<void> validateIslandName(std::string_view name) {
  const std::string value(name);
  if (name.empty() || name.size() > kMaxNameLength)
    return invalidIsland(value, value, "a name needs 1 to 64 characters");
  if (name.front() == '.') return invalidIsland(value, value, "a name may not start with '.'");
  for (char c : name) {
    if (!isNameCharacter(c))
      return invalidIsland(
          value, value,
          std::string("character '") + c + "' not allowed (letters, digits, '-', '_', '.')");
  }
  if (name == kSharedIslandName)
    return invalidIsland(value, value, "'shared' is the island of unclaimed CPUs");
  return ok();
}

Result<void> validateLimits(const std::string& island, const IslandLimits& limits) {
  auto weight = [&](const std::optional<unsigned>& value, const char* file) -> Result<void> {
    if (value && (*value < kMinWeight || *value > kMaxWeight))
      return invalidIsland(island, std::to_string(*value),
                           std::string(file) + " must be between 1 and 10000");
    return ok();
  };
  if (auto checked = weight(limits.cpuWeight, "cpu.weight"); !checked) return checked;
  if (auto checked = weight(limits.ioWeight, "io.weight"); !checked) return checked;
  if (limits.cpuMax && !isValidCpuMax(*limits.cpuMax))
    return invalidIsland(island, *limits.cpuMax,
                         "cpu.max must be 'max' or 'QUOTA [PERIOD]' in microseconds, "
                         "each 1000 or more (period at most 1000000)");
  // Protection may not exceed the throttle above it.
  const std::optional<std::uint64_t> ordered[] = {limits.memoryMin, limits.memoryLow,
                                                  limits.memoryHigh, limits.memoryMax};
  const char* names[] = {"memory.min", "memory.low", "memory.high", "memory.max"};
  for (int i = 0; i < 4; ++i) {
    for (int j = i + 1; j < 4; ++j) {
      if (ordered[i] && ordered[j] && *ordered[i] > *ordered[j])
        return invalidIsland(island, std::to_string(*ordered[i]),
                             std::string(names[i]) + " exceeds " + names[j] + " (" +
                                 std::to_string(*ordered[j]) + ")");
    }
  }
  return ok();
}

Result<void> validateIslands(const Topology& topology, const std::vector<Island>& islands) {
  std::set<std::string> names;
  CpuList nodeIndexes;
  for (const auto& node : topology.nodes()) nodeIndexes.push_back(node.osIndex);
  for (const auto& island : islands) {
    if (auto named = validateIslandName(island.name); !named) return named;
    if (!names.insert(island.name).second)
      return invalidIsland(island.name, island.name, "two islands have this name");
    if (island.cpus.empty()) return invalidIsland(island.name, "", "an island needs CPUs");
    for (unsigned cpu : island.cpus) {
      if (!contains(topology.cpus(), cpu))
        return invalidIsland(island.name, std::to_string(cpu),
                             "CPU " + std::to_string(cpu) + " does not exist (host has " +
                                 formatCpuList(topology.cpus()) + ")");
    }
    if (island.memNodes.empty())
      return invalidIsland(island.name, "", "an island needs memory nodes");
    for (unsigned node : island.memNodes) {
      if (!contains(nodeIndexes, node))
        return invalidIsland(island.name, std::to_string(node),
                             "NUMA node " + std::to_string(node) + " does not exist (host has " +
                                 formatCpuList(nodeIndexes) + ")");
    }
    if (auto limited = validateLimits(island.name, island.limits); !limited) return limited;
  }
  for (std::size_t i = 0; i < islands.size(); ++i) {
    for (std::size_t j = i + 1; j < islands.size(); ++j) {
      const Island& a = islands[i];
      const Island& b = islands[j];
      CpuList common = intersectionOf(a.cpus, b.cpus);
      if (!common.empty() && (isExclusive(a.exclusivity) || isExclusive(b.exclusivity))) {
        const Island& exclusive = isExclusive(a.exclusivity) ? a : b;
        const Island& other = &exclusive == &a ? b : a;
        return invalidIsland(exclusive.name, formatCpuList(common),
                             "exclusive island overlaps island '" + other.name + "' on CPUs " +
                                 formatCpuList(common));
      }
    }
  }
  // A core's threads share execution units: splitting them between two
  // islands would let one island's load slow the other.
  for (const auto& core : topology.cores()) {
    const Island* owner = nullptr;
    for (const auto& island : islands) {
      if (intersectionOf(core.cpus, island.cpus).empty()) continue;
      if (owner != nullptr &&
          intersectionOf(core.cpus, owner->cpus) != intersectionOf(core.cpus, island.cpus)) {
        return invalidIsland(island.name, formatCpuList(core.cpus),
                             "SMT siblings " + formatCpuList(core.cpus) +
                                 " would be split between islands '" + owner->name + "' and '" +
                                 island.name + "'");
      }
      owner = &island;
    }
  }
  if (sharedCpus(topology, islands).empty()) {
    std::string claimed;
    for (const auto& island : islands) claimed += (claimed.empty() ? "" : ", ") + island.name;
    return invalidIsland(
        islands.empty() ? "" : islands.back().name, formatCpuList(topology.cpus()),
        "islands (" + claimed + ") would claim every CPU and leave the shared island empty");
  }
  return ok();
}

CpuList sharedCpus(const Topology& topology, const std::vector<Island>& islands) {
  CpuList claimed;
  for (const auto& island : islands) claimed = unionOf(claimed, island.cpus);
  return differenceOf(topology.cpus(), claimed);
}

CpuList nodesOfCpus(const Topology& topology, const CpuList& cpus) {
  CpuList nodes;
  for (unsigned cpu : cpus) {
    if (auto node = topology.nodeOfCpu(cpu)) nodes = unionOf(nodes, CpuList{*node});
  }
  return nodes;
}

}  // namespace Atoll::numa
