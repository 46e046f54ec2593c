#pragma once
// The planner's rules in numbers. Defaults suit 5-minute forecast steps and
// hosts of tens of cores; every value is checked by validate() before use.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "migrate/planner/PlanInput.h"

namespace Atoll::planner {

// Which islands may give CPUs to an island at risk, and how many.
// peak: an island gives only whole CPUs beyond its own p95 peak (p99 with
// critical VMs) times headroom over the horizon, and must stay out of risk.
// expected-unmet: any island may give k CPUs when the receiver's expected
// unmet demand avoided, less the donor's added, pays for the resize; the
// (donor, k) with the best net relief per cost is chosen.
// peak-then-expected-unmet: expected-unmet donors only for an island at risk
// that no island can give to by the peak rule.
enum class DonorRule { Peak, ExpectedUnmet, PeakThenExpectedUnmet };
std::string_view donorRuleName(DonorRule rule);
std::optional<DonorRule> parseDonorRule(std::string_view text);
// Every rule's name, comma-separated, for messages that list the choices.
std::string donorRuleChoices();

struct PlannerConfig {
  Mode mode = Mode::Observe;    // default for a new install: explain, change nothing
  int horizonSteps = 12;        // forecast steps the benefit is counted over
  double riskThreshold = 0.05;  // P(demand > capacity) that marks an island at risk
  // Headroom a resize aims for: the receiver's capacity is raised towards its
  // peak (resizeQuantile) times this, and a donor keeps its own p95 peak
  // times this.
  double headroom = 1.05;
  unsigned maxCpusPerResize = 16;
  bool allowVmMoves = true;
  int vmCandidatesPerIsland = 8;  // largest flexible VMs considered per island at risk
  // A resize sizes the receiver for this quantile's peak over the horizon
  // (times headroom): 95 or 99. Sizing for the tail lets one action last the
  // horizon instead of several small ones chasing the peak.
  int resizeQuantile = 99;
  // Action economy: an action must relieve at least this share of what the
  // resize the receiving island needs (sized as above, at most
  // maxCpusPerResize) would relieve of its
  // expected unmet demand over the horizon, so one action that fixes an
  // island is taken rather than several that each shave a bit.
  double minReliefShare = 0.5;
  // A VM is moved on its own forecast only while that forecast's recent p95
  // coverage at the planning horizon (the forecaster's tracked accuracy) is
  // at least this; a series whose level shifted has a stale forecast. Above
  // it, the move's benefit is scaled by coverage / 0.95 (at most 1).
  double minMoveCoverage = 0;
  // Proactive balance: an island whose capacity falls short of its sized
  // peak (as a resize sizes it) by more than this share of the host's
  // capacity-to-peak ratio gets CPUs from the island with the most capacity
  // beyond that ratio, before it is at risk; 0 turns it off. The band is the
  // hysteresis: a balanced island must drift this far before it is resized
  // again.
  double balanceBand = 0;  // off: on Bitbrains it chased noisy p99 peaks (bench/RESULTS.md)
  // A donor keeps its own p95 peak (times headroom) over the longer of the
  // planning horizon and the island cooldown its resize starts: it cannot
  // take the CPUs back before the cooldown ends, so a donor sized for the
  // horizon alone gives away CPUs its own later peak needs, and that
  // shortage then waits out the cooldown. Off: the horizon alone.
  bool donorKeepsPeakOverCooldown = false;
  // Under the expected-unmet donor rules, the donor's harm (its expected
  // unmet demand added) counts over the longer of the horizon and the island
  // cooldown the resize starts (as far as its forecast reaches), the
  // receiver's relief over the horizon: the cooldown keeps the CPUs away
  // that long, and a donor whose demand returns after the horizon would run
  // short with no pass seeing it at risk first. Off: both over the horizon.
  bool donorHarmOverCooldown = true;
  // An island counts as at risk only while its p50 peak over the horizon is
  // at least this share of its capacity: on a lightly loaded host with spiky
  // members the forecast's upper tail alone crosses the risk threshold, and
  // acting on it moves CPUs that the islands' own spikes then miss. 0: the
  // risk threshold alone. With the donor rule below, 0.6 took fewer actions
  // than 0.5 at about the same overload on the replayed hosts
  // (bench/RESULTS.md).
  double minRiskP50Share = 0.6;
  // See DonorRule. Under expected-unmet the relief share (minReliefShare)
  // applies to the net relief (the receiver's relief less the donor's harm).
  // The fallback, with the harm over the cooldown and the p50 floor at 0.6,
  // left less overload than the peak rule with fewer actions on the replayed
  // hosts (bench/RESULTS.md).
  DonorRule donorRule = DonorRule::PeakThenExpectedUnmet;
  // How much more contention of a higher-priority island weighs, per level.
  double priorityWeight = 0.5;

  // Costs (core-seconds).
  double defaultMigrationBytesPerSecond = 1.0e9;
  double cacheWarmupSecondsPerCpu = 0.5;  // a moved CPU's caches, refilled
  double vmCacheWarmupSeconds = 2.0;      // per core of the VM's demand, after a node change
  double resizeDisruptionPerVm = 0.01;    // every VM of both islands sees its cpuset change
  double moveSlowdown = 0.3;              // share of the VM's demand lost while its pages move
  double resizeActionCpu = 0.002;         // the cgroup writes of one resize
  double moveActionCpu = 0.005;

  // Benefit must exceed cost * (1 + margin); the outcome loop moves the
  // margin within [minMargin, maxMargin].
  double margin = 0.5;
  double minMargin = 0.1;
  double maxMargin = 3.0;
  double marginStep = 0.1;
  // Trust in an island's forecast scales its predicted benefit; the outcome
  // loop keeps it within [minTrust, maxTrust].
  double minTrust = 0.25;
  double maxTrust = 1.5;
  double trustGain = 0.2;          // EW weight of one outcome's realised/predicted ratio
  double outcomeTolerance = 0.25;  // realised within +-25% of predicted changes nothing

  // Guards.
  int64_t minDwellNs = 1'800'000'000'000;  // a moved VM stays put 30 min
  // After an action, the islands it touched are left alone this long: their
  // forecasts must first see the new capacity or members.
  int64_t islandCooldownNs = 7'200'000'000'000;  // 2 h
  // Within the cooldown, an island may take the same part again sooner: one
  // relieved by the last action (it gained CPUs or shed a VM) may be
  // relieved again, one that gave may give again, after this long. A
  // rising forecast can outgrow one step; only a change of direction (taking
  // back what was just given) is chatter, and that waits the whole cooldown.
  // Longer than the cooldown means the cooldown alone.
  int64_t sameRoleCooldownNs = 7'200'000'000'000;  // off: the whole cooldown
  int64_t budgetWindowNs = 3'600'000'000'000;
  int hostMovesPerWindow = 8;
  int islandMovesPerWindow = 3;
  int64_t hysteresisWindowNs = 3'600'000'000'000;
  double hysteresisFactor = 2.0;  // reversing a recent decision needs this times the margin gain

  // Post-move verification: a run-queue latency this much worse, or a
  // throughput this much lower, than before the move proposes a revert.
  double verifyLatencyTolerance = 0.2;
  double verifyThroughputTolerance = 0.1;

  // Empty when valid, else what is wrong, naming the field and its value.
  std::string validate() const;
};

}  // namespace Atoll::planner
