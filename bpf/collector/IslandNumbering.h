#pragma once
// Island numbers for the scheduler programs' cross-island wait: the islands
// are the child cgroups of the managed root (<mount>/<managed root>/<island>),
// and a workload belongs to the island whose cgroup holds its own (the rule
// the islands' aggregates use). An island keeps its number while it exists;
// a number freed by a vanished island is reused only after every other one.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "util/Fs.h"
#include "util/Result.h"

namespace Atoll::telemetry {

class IslandNumbering {
 public:
  // Island numbers are 1..maxIslands (0 = no island).
  static constexpr uint32_t kMaxIslands = 63;

  explicit IslandNumbering(std::string managedRoot) : managedRoot_(std::move(managedRoot)) {}

  // Brings the numbering in line with the islands present now. Islands past
  // kMaxIslands get no number and are named in the returned list.
  std::vector<std::string> update(const std::vector<std::string>& islandNames);
  // The island of a cgroup path relative to the mount; 0 when in none.
  uint32_t islandOf(std::string_view cgroupPath) const;
  bool empty() const { return numbers_.empty(); }
  const std::map<std::string, uint32_t>& numbers() const { return numbers_; }
  const std::string& managedRoot() const { return managedRoot_; }

 private:
  std::string managedRoot_;
  std::map<std::string, uint32_t> numbers_;
  uint32_t lastGiven_ = 0;
};

// The islands' cgroup names: the child directories of <mount>/<managedRoot>;
// none when that directory does not exist.
Result<std::vector<std::string>> listIslandCgroups(const Dir& mount,
                                                   const std::string& managedRoot);

}  // namespace Atoll::telemetry
