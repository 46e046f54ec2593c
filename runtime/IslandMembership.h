#pragma once
// Which workloads make up each island's demand, for the forecaster's island
// aggregates: a workload belongs to an island when its cgroup lies in the
// island's cgroup (<managed root>/<island>/...); every other workload runs in
// the shared island (the CPUs no island claims). The host aggregate holds
// every workload against all CPUs. Pure, so it is tested on constructed
// workloads.
#include <cstdint>
#include <string>
#include <vector>

#include <sys/types.h>

#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "bpf/collector/WorkloadRegistry.h"
#include "numa/Island.h"
#include "numa/VmPinner.h"
#include "runtime/Config.h"
#include "util/Result.h"

namespace Atoll {

enum class AggregateKind { Host, Shared, Island };
std::string_view aggregateKindName(AggregateKind kind);  // "host", "shared", "island"

struct IslandAggregate {
  std::string name;
  AggregateKind kind = AggregateKind::Island;
  std::vector<uint32_t> members;  // workload numbers, ascending
  double capacityCores = 0;

  bool operator==(const IslandAggregate&) const = default;
};

// The name under which the host aggregate and the shared island appear.
inline constexpr std::string_view kHostAggregateName = "host";
inline constexpr std::string_view kSharedAggregateName = "shared";

// Host first, then shared, then the islands in configuration order.
std::vector<IslandAggregate> islandAggregates(const std::vector<IslandSettings>& islands,
                                              const std::vector<telemetry::Workload>& workloads,
                                              const std::string& managedRoot, unsigned hostCpus);

// Desired membership: which island each workload is held on. A pin is the
// desired-state entry "pins/WORKLOAD" = {"island": NAME, "source":
// "operator"|"planner"}; WORKLOAD is "pid:N" for a process, else a libvirt
// domain name (optionally written "vm:NAME"). An island's selectors claim
// the workloads they match; a pin wins over a selector. Each tick the
// islands subsystem observes where every claimed workload is and moves only
// those that are elsewhere, so a second pass changes nothing.
inline constexpr std::string_view kPinStatePrefix = "pins/";
inline constexpr std::string_view kPinSourceOperator = "operator";
inline constexpr std::string_view kPinSourcePlanner = "planner";

enum class WorkloadKind { Process, Domain };

struct WorkloadName {
  WorkloadKind kind = WorkloadKind::Domain;
  pid_t pid = 0;
  std::string domain;

  // "pid:N" or the domain name, as pins and moves are keyed.
  std::string key() const;
};

// "pid:1234" is a process; "vm:NAME" or a bare NAME a libvirt domain.
Result<WorkloadName> parseWorkloadName(std::string_view text);

struct WorkloadPin {
  std::string workload;  // WorkloadName::key()
  std::string island;    // an island name, or "shared"
  std::string source;    // "operator" or "planner"

  bool operator==(const WorkloadPin&) const = default;
};

// A "pins/WORKLOAD" value; errors name the offending value.
Result<WorkloadPin> parsePinStateValue(std::string_view workload, const nlohmann::json& value);
nlohmann::json pinStateValue(const WorkloadPin& pin);

// A workload an island's selector matched.
struct SelectedWorkload {
  std::string workload;
  std::string island;
  std::string selector;  // as written, for the journal and messages
};

// Where a workload is now: the island holding it ("shared" when none), or
// empty when it is held somewhere no island describes (a VM pinned by hand).
struct ObservedWorkload {
  bool running = false;
  std::string island;
};

struct MembershipMove {
  std::string workload;
  std::string from;
  std::string to;
  std::string reason;  // "pin:operator", "pin:planner", "selector:TEXT"

  bool operator==(const MembershipMove&) const = default;
};

struct MembershipPlan {
  std::vector<MembershipMove> moves;  // ordered by workload
  std::vector<std::string> problems;  // pins that cannot be honoured, with why
};

// What to move where: every pinned or selected workload that runs and is
// not already on its island. Pins to an island that does not exist, and
// workloads that do not run, are problems, not moves. `islands` are the
// desired island names ("shared" is always valid).
MembershipPlan planMembership(const std::vector<WorkloadPin>& pins,
                              const std::vector<SelectedWorkload>& selected,
                              const std::set<std::string>& islands,
                              const std::map<std::string, ObservedWorkload>& observed);

// The island a process's cgroup (as /proc/PID/cgroup's "0::PATH" line
// shows it) puts it on: "NAME" for <managedRoot>/NAME[/...], else "shared".
std::string islandOfCgroup(std::string_view procCgroupText, const std::string& managedRoot);

// The island whose CPUs and memory nodes a VM's pinning matches exactly
// (every vCPU, the emulator threads and the numatune nodeset), or empty.
std::string islandOfPinning(const numa::DomainPinning& pinning,
                            const std::vector<numa::Island>& islands);

}  // namespace Atoll
