#pragma once
// The islands subsystem (act phase): the desired islands are those of the
// configuration ([islands.NAME]) and of the desired state ("islands/NAME" =
// {"cpus": "2-3", "mems": "0"}, which wins over the file). Each tick it
// compares them with what cgroupfs shows through the IslandEnforcer and, only
// when they differ, applies the complete set as one journaled action, so a
// second start changes nothing and a crash mid-change is completed at the
// next start. Islands found in cgroupfs that nobody asked for are kept as
// they are. A host without the cgroup v2 cpuset controller degrades: the
// desired islands are reported, not enforced, with the reason logged once
// and shown in `atoll status`.
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "numa/IslandEnforcer.h"
#include "runtime/ActionLog.h"
#include "runtime/Config.h"
#include "runtime/StateStore.h"
#include "runtime/Subsystem.h"

namespace Atoll {

// The desired-state prefix of islands.
inline constexpr std::string_view kIslandStatePrefix = "islands/";

struct DesiredIsland {
  IslandSettings settings;
  std::string source;  // "config" or "state"
};

// Config islands overlaid by the store's "islands/NAME" entries; entries
// that do not parse are reported in `problems` and left out.
std::vector<DesiredIsland> desiredIslands(const std::vector<IslandSettings>& configured,
                                          const std::vector<StateEntry>& stateEntries,
                                          std::vector<std::string>& problems);

// Why the host cannot hold islands (no cgroup2 mount, no cpuset controller),
// or empty when it can.
std::string islandSupportProblem(const std::string& cgroupMount);

class IslandSubsystem final : public Subsystem {
 public:
  using IslandSource = std::function<std::vector<IslandSettings>()>;

  IslandSubsystem(StateStore& store, ActionLog& actions, IslandSource configured,
                  std::string cgroupMount,
                  std::string managedRoot = std::string(numa::kDefaultManagedRoot));

  std::string_view name() const override { return "islands"; }
  bool runsIn(Phase phase) const override { return phase == Phase::Act; }
  Result<void> runPhase(Phase phase, const TickContext& context) override;
  Result<ActionOutcome> recover(const PendingAction& action) override;
  nlohmann::json describe() const override;

  // Any thread: desired and current islands, the shared CPUs, the topology
  // and whether islands are enforced here (GET /v1/islands).
  nlohmann::json islandsJson() const;
  const std::string& managedRoot() const { return managedRoot_; }

 private:
  Result<void> ensureEnforcer();
  Result<void> reconcile(const std::vector<DesiredIsland>& desired);
  std::vector<numa::Island> toIslands(const std::vector<DesiredIsland>& desired) const;
  void setDegraded(std::string reason);

  StateStore& store_;
  ActionLog& actions_;
  IslandSource configured_;
  std::string cgroupMount_;
  std::string managedRoot_;
  std::optional<numa::Topology> topology_;
  std::optional<numa::IslandEnforcer> enforcer_;

  mutable std::mutex viewMutex_;
  std::string degraded_;
  std::vector<DesiredIsland> desired_;
  std::vector<numa::IslandStatus> current_;
  std::vector<std::string> problems_;
  uint64_t changesApplied_ = 0;
  bool enforced_ = false;
  std::string topologySummary_;
  std::string sharedCpus_;
};

}  // namespace Atoll
