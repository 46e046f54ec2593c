#pragma once
// The islands subsystem (act phase): the desired islands are those of the
// configuration ([islands.NAME]) and of the desired state ("islands/NAME" =
// {"cpus": "2-3", "mems": "0", "exclusivity": "root", "limits": {"cpu.weight":
// 200, ...}, "selectors": ["vm:db-*"]}, which wins over the file; only "cpus"
// is required, and a setting left out keeps what cgroupfs holds). The value
// {"absent": true} asks for the island to be gone. Each tick it compares
// them with what cgroupfs shows through the IslandEnforcer and, only when
// they differ, applies the complete set as one journaled action; then it
// reconciles membership (IslandMembership.h: "pins/WORKLOAD" entries and the
// islands' selectors), moving processes by cgroup and pinning libvirt
// domains through libvirt, again as one journaled action. So a second pass
// changes nothing and a crash mid-change is completed at the next start.
// An island whose memory nodes change keeps its old nodes through that
// apply; then its members' pages move to the new nodes as the direct path
// moves them (IslandEnforcer::moveMemory: measured from numa_maps, timed),
// and the outcome is kept as the island's last memory move (bytes moved,
// milliseconds, the desired-state revision that asked, or the error), shown
// by GET /v1/islands until the daemon stops.
// Islands found in cgroupfs that nobody asked for are kept as they are. A
// host without the cgroup v2 cpuset controller degrades: the desired
// islands are reported, not enforced, with the reason logged once and shown
// in `atoll status`.
//
// The local API changes this desired state through changeIsland() and
// changePin(), which validate the complete change against the topology,
// the other islands, the running workloads and libvirt before storing
// anything.
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "numa/BoundedVmPinner.h"
#include "numa/IslandEnforcer.h"
#include "numa/IslandLimitsJson.h"
#include "numa/MemoryMove.h"
#include "numa/VmPinner.h"
#include "runtime/ActionLog.h"
#include "runtime/Config.h"
#include "runtime/IslandMembership.h"
#include "runtime/StateStore.h"
#include "runtime/Subsystem.h"

namespace Atoll {

// The desired-state prefix of islands.
inline constexpr std::string_view kIslandStatePrefix = "islands/";
// The facts prefix of each island's last memory move, so that a restarted
// daemon still reports it.
inline constexpr std::string_view kIslandMemoryMovePrefix = "islands/memory_moves/";

struct DesiredIsland {
  IslandSettings settings;
  std::string source;  // "config" or "state"
  // Unset: whatever cgroupfs holds is kept.
  std::optional<numa::Exclusivity> exclusivity;
  std::optional<numa::IslandLimits> limits;
  std::vector<std::string> selectors;  // as written (numa/IslandSelector.h)
  uint64_t revision = 0;               // of its "islands/NAME" entry; 0 from the file
};

// One "islands/NAME" value; nullopt for the {"absent": true} tombstone.
// Errors name the key and the offending value.
Result<std::optional<DesiredIsland>> parseIslandStateValue(const std::string& name,
                                                           const nlohmann::json& value);
nlohmann::json islandStateValue(const DesiredIsland& island);
Result<numa::IslandLimits> parseLimitsJson(const std::string& island, const nlohmann::json& value);

// Config islands overlaid by the store's "islands/NAME" entries; entries
// that do not parse are reported in `problems` and left out. Names asked to
// be absent are added to `absent` when given.
std::vector<DesiredIsland> desiredIslands(const std::vector<IslandSettings>& configured,
                                          const std::vector<StateEntry>& stateEntries,
                                          std::vector<std::string>& problems,
                                          std::vector<std::string>* absent = nullptr);

// How an islands apply ends in the journal: completed, rolled back, or
// (when the rollback could not put back everything, `notRolledBack`
// non-empty) rollback_incomplete, so that a half-way host is never
// recorded as restored.
ActionOutcome applyOutcome(bool applied, const std::vector<Error>& notRolledBack);

// What the API answers for a change: an HTTP status and a JSON body.
struct IslandChangeReply {
  int status = 200;
  nlohmann::json body;
};
enum class IslandChange { Create, Update, Delete };

// Why the host cannot hold islands (no cgroup2 mount, no cpuset controller),
// or empty when it can.
std::string islandSupportProblem(const std::string& cgroupMount);

// How long a call to libvirt (pin, or read a VM's pinning) may hold the
// islands tick or an API request: libvirt gives up waiting for a domain's
// job lock after 30 s itself, so a call still unanswered past that is one
// to a libvirtd that hangs.
inline constexpr std::chrono::milliseconds kLibvirtCallDeadline{30'000};

class IslandSubsystem final : public Subsystem {
 public:
  using IslandSource = std::function<std::vector<IslandSettings>()>;
  using PinnerFactory = std::function<Result<std::unique_ptr<numa::VmPinner>>()>;

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

  // Pinners on libvirt at `uri` (the daemon passes [telemetry] libvirt_uri,
  // so VMs are named and pinned on one libvirt). An empty uri says libvirt
  // is not used on this host: every VM pin is then refused, saying so.
  static PinnerFactory libvirtPinners(std::string uri);

  // Before the first tick: a recorded topology instead of the host's, and
  // how libvirt is reached (default: libvirtPinners(qemu:///system)).
  void useTopology(numa::Topology topology);
  // Each call to libvirt waits at most `deadline` (numa/BoundedVmPinner.h).
  // Replaces the connection made with the pinners used before.
  void usePinners(PinnerFactory pinners,
                  std::chrono::milliseconds deadline = kLibvirtCallDeadline) {
    std::lock_guard lock(pinnerMutex_);
    pinners_ = std::move(pinners);
    pinnerDeadline_ = deadline;
    pinner_.reset();
  }

  // Any thread (the API): validates a change of island NAME (Create: `body`
  // holds "name", and "cpus" or "count"; Update: the fields to change,
  // "grow"/"shrink" N included; Delete: no body) against everything the
  // desired state then holds, and stores it only when all of it is valid.
  IslandChangeReply changeIsland(IslandChange change, const std::string& name,
                                 const nlohmann::json& body, const ChangeOrigin& origin) const;
  // PUT /v1/pins/WORKLOAD (`body` the pin value) or, with a null body,
  // DELETE: the workload must run and the island be desired (or "shared").
  IslandChangeReply changePin(const std::string& workload, const nlohmann::json& body,
                              const ChangeOrigin& origin) const;

 private:
  Result<void> ensureEnforcer();
  Result<void> reconcile(const std::vector<DesiredIsland>& desired,
                         const std::vector<std::string>& absent);
  Result<void> reconcileMembers(const std::vector<DesiredIsland>& desired);
  // Moves an island's pages to its new memory nodes through the enforcer
  // (measured and timed), remembering the outcome as its last memory move.
  Result<void> moveIslandMemory(const numa::MemoryNodeChange& change, uint64_t revision);
  // Reads the last memory moves a previous run stored as facts.
  void loadMemoryMoves();
  // Drops a removed island's last memory move, here and in the store.
  void forgetMemoryMove(const std::string& island);
  Result<void> moveWorkload(const std::string& workload, const std::string& island,
                            const std::vector<numa::Island>& islands);
  Result<numa::VmPinner*> pinner() const;
  std::vector<numa::Island> toIslands(const std::vector<DesiredIsland>& desired) const;
  numa::Island sharedIsland(const std::vector<numa::Island>& islands) const;
  void setDegraded(std::string reason);
  Result<void> validateDesired(const std::vector<DesiredIsland>& desired,
                               const DesiredIsland* changed) const;

  StateStore& store_;
  ActionLog& actions_;
  IslandSource configured_;
  std::string cgroupMount_;
  std::string managedRoot_;
  std::optional<numa::Topology> topology_;
  std::string topologyProblem_;
  std::optional<numa::IslandEnforcer> enforcer_;
  PinnerFactory pinners_;
  std::chrono::milliseconds pinnerDeadline_ = kLibvirtCallDeadline;
  mutable std::mutex pinnerMutex_;
  mutable std::unique_ptr<numa::BoundedVmPinner> pinner_;
  // Serialises the API's validate-then-store changes.
  mutable std::mutex changeMutex_;

  mutable std::mutex viewMutex_;
  std::string degraded_;
  std::vector<DesiredIsland> desired_;
  std::vector<numa::IslandStatus> current_;
  std::map<std::string, numa::MemoryMove> memoryMoves_;  // by island, the last one
  std::vector<std::string> problems_;
  std::vector<WorkloadPin> pins_;
  std::vector<std::string> memberProblems_;
  uint64_t changesApplied_ = 0;
  bool enforced_ = false;
  std::string topologySummary_;
  std::string sharedCpus_;
};

}  // namespace Atoll
