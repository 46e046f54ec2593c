// atoll replay: judges the planner on recorded traces before it touches a
// host. The real forecaster and planner run against a simulated host whose
// VMs follow the traces; the reactive threshold policy and static islands
// run in the same pass on the same demand, and each is scored.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>

#include "migrate/planner/TraceReplay.h"
#include "tools/NumberOptions.h"
#include "tools/Verbs.h"

namespace Atoll::cli {

namespace {

constexpr int64_t kMaxCooldownSeconds = 7 * 86400;

[[noreturn]] void fail(const Error& error, ExitCode code) {
  std::cerr << "atoll replay: " << error.message() << "\n";
  throw CLI::RuntimeError(code);
}

struct ReplayVerbArgs {
  std::string trace;
  std::string host = "cpus=64,nodes=2,islands=4";
  std::string policies = "atoll,threshold,static";
  std::string svg;
  bool json = false;
  size_t steps = 0;
  size_t warmup = 288;
  // Unset: the defaults of the planner, forecaster and threshold policy.
  std::optional<int> horizon;
  std::optional<double> margin;
  std::optional<double> maxMargin;
  std::optional<double> marginStep;
  std::optional<double> balanceBand;
  std::optional<double> sameRoleCooldownSeconds;
  bool donorPeakOverCooldown = false;
  bool donorHarmOverCooldown = false;
  bool donorHarmOverHorizon = false;
  std::optional<double> minRiskP50Share;
  std::optional<double> riskThreshold;
  std::optional<std::string> donorRule;
  std::optional<double> minReliefShare;
  std::optional<double> forecastRecentQuantileRate;
  std::optional<double> thresholdUpper;
  std::optional<double> thresholdTarget;
  bool quiet = false;
  bool noVmMoves = false;
};

void run(const ReplayVerbArgs& args) {
  auto host = planner::parseHostSpec(args.host);
  if (!host) fail(host.error(), kExitUsage);
  auto policies = planner::parsePolicies(args.policies);
  if (!policies) fail(policies.error(), kExitUsage);
  planner::ReplayOptions options;
  options.host = host.value();
  options.policies = policies.value();
  options.warmupSteps = args.warmup;
  if (args.horizon) options.planner.horizonSteps = *args.horizon;
  if (args.maxMargin) options.planner.maxMargin = *args.maxMargin;
  if (args.marginStep) options.planner.marginStep = *args.marginStep;
  if (args.margin) options.planner.margin = *args.margin;
  if (args.noVmMoves) options.planner.allowVmMoves = false;
  if (args.balanceBand) options.planner.balanceBand = *args.balanceBand;
  if (args.donorPeakOverCooldown) options.planner.donorKeepsPeakOverCooldown = true;
  if (args.donorHarmOverCooldown && args.donorHarmOverHorizon)
    fail(Error::invalid("parse options", "--donor-harm-over-cooldown/--donor-harm-over-horizon", "",
                        "give one of them"),
         kExitUsage);
  if (args.donorHarmOverCooldown) options.planner.donorHarmOverCooldown = true;
  if (args.donorHarmOverHorizon) options.planner.donorHarmOverCooldown = false;
  if (args.minRiskP50Share) options.planner.minRiskP50Share = *args.minRiskP50Share;
  if (args.riskThreshold) options.planner.riskThreshold = *args.riskThreshold;
  if (args.minReliefShare) options.planner.minReliefShare = *args.minReliefShare;
  if (args.donorRule) {
    auto rule = planner::parseDonorRule(*args.donorRule);
    if (!rule)
      fail(Error::invalid("parse options", "--donor-rule", *args.donorRule,
                          "must be one of " + planner::donorRuleChoices()),
           kExitUsage);
    options.planner.donorRule = *rule;
  }
  if (args.sameRoleCooldownSeconds) {
    // [planner] same_role_cooldown_seconds' bound; far beyond it the
    // nanoseconds would overflow.
    if (*args.sameRoleCooldownSeconds > kMaxCooldownSeconds) {
      char text[32];
      std::snprintf(text, sizeof text, "%g", *args.sameRoleCooldownSeconds);
      fail(Error::invalid(
               "parse options", "--same-role-cooldown", text,
               "must be at most " + std::to_string(kMaxCooldownSeconds) + " seconds (a week)"),
           kExitUsage);
    }
    options.planner.sameRoleCooldownNs = int64_t(*args.sameRoleCooldownSeconds * 1e9);
  }
  if (args.forecastRecentQuantileRate)
    options.forecastRecentQuantileRate = *args.forecastRecentQuantileRate;
  if (args.thresholdUpper) options.threshold.upper = *args.thresholdUpper;
  if (args.thresholdTarget) {
    options.threshold.target = *args.thresholdTarget;
    options.threshold.donorMax = *args.thresholdTarget;
  }
  if (std::string problem = options.planner.validate(); !problem.empty())
    fail(Error::invalid("parse options", "planner options", "", problem), kExitUsage);
  if (!(options.threshold.upper > 0 && options.threshold.upper <= 1.5 &&
        options.threshold.target > 0 && options.threshold.target <= options.threshold.upper))
    fail(Error::invalid("parse options", "--threshold-upper/--threshold-target",
                        std::to_string(options.threshold.upper) + "/" +
                            std::to_string(options.threshold.target),
                        "need 0 < target <= upper <= 1.5"),
         kExitUsage);
  const auto started = std::chrono::steady_clock::now();
  if (!args.quiet) std::cerr << "atoll replay: reading " << args.trace << "\n";
  auto traces = planner::readTraceDir(args.trace, args.steps);
  if (!traces) fail(traces.error(), kExitUsage);
  if (!args.quiet)
    options.progress = [](const std::string& line) { std::cerr << "atoll " << line << "\n"; };
  auto report = planner::runTraceReplay(traces.value(), options);
  if (!report) fail(report.error(), kExitFailure);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (!args.svg.empty()) {
    std::ofstream out(args.svg, std::ios::binary | std::ios::trunc);
    out << planner::renderReplaySvg(report.value());
    if (!out.flush())
      fail(Error::invalid("write", args.svg, "", "cannot write the SVG"), kExitFailure);
  }
  if (args.json) {
    auto json = planner::toJson(report.value());
    json["wall_seconds"] = seconds;
    std::cout << json.dump(2) << "\n";
  } else {
    std::cout << planner::formatReplayReport(report.value());
    std::cout << "replayed in " << seconds << " s\n";
  }
}

}  // namespace

void addReplayVerb(CLI::App& app) {
  auto args = std::make_shared<ReplayVerbArgs>();
  CLI::App* verb = app.add_subcommand(
      "replay",
      "Replay VM traces on a simulated host: the planner (atoll) against a reactive threshold "
      "policy and static islands, scored on the same demand");
  verb->footer(
      "Traces: a PlanetLab 'wide' directory (step_5min,<vm>,... CSVs, gzip or plain, one per "
      "day, in date order; column k of every day is VM slot k) or a Bitbrains directory (one "
      "<id>.csv[.gz] per VM, optionally in month folders). Steps are 5 minutes.\n"
      "Host SPEC: cpus=N,nodes=N,islands=N[,smt=N][,l3=N][,load=F][,vms=N][,seed=N]. The host "
      "keeps one core; islands split the rest evenly (whole cores, by the island allocator). "
      "VMs are taken in FNV-1a hash order of their names until their mean demand is load x "
      "the islands' capacity (or exactly vms=N), and each goes to island "
      "hash(\"island:\"+name) mod islands; a non-zero seed is mixed into both hashes, drawing "
      "another host from the same traces. Threshold and static only resize islands, atoll "
      "also moves VMs between islands.\n"
      "Policies: atoll (forecaster + planner, enforce mode), threshold (acts when an "
      "island's observed utilisation passes --threshold-upper, growing it back to "
      "--threshold-target from the least utilised island; same move budgets and dwell), "
      "static (no moves); atoll-hindsight is a diagnostic bound, never run by default and "
      "never a policy for a host: the same planner and rules as atoll fed the trace's actual "
      "future demand (p50 = p95 = p99 = the demand to come, for islands and VMs) instead of "
      "the forecaster's profiles, so what it leaves of overload is what the rules, guards "
      "and budgets leave with a perfect forecast. Scored after the warm-up: overload "
      "VM-minutes, depth, actions, CPU-seconds of moves.");
  verb->add_option("--trace", args->trace, "Trace directory (PlanetLab wide or Bitbrains)")
      ->required();
  verb->add_option("--host", args->host, "Simulated host SPEC")->capture_default_str();
  verb->add_option("--policy", args->policies,
                   "Policies to run, comma-separated: atoll, threshold, static, "
                   "atoll-hindsight (a perfect-forecast bound)")
      ->capture_default_str();
  verb->add_option("--svg", args->svg, "Write a timeline (demand vs capacity, actions) here");
  verb->add_flag("--json", args->json, "Print the report as JSON");
  verb->add_option("--steps", args->steps, "Replay only the first N steps (0: all)")
      ->check(kDecimal);
  verb->add_option("--warmup", args->warmup, "Steps before policies act and scoring starts")
      ->capture_default_str()
      ->check(kDecimal);
  verb->add_option("--horizon", args->horizon, "Planner horizon in steps (default 12)")
      ->check(kSignedDecimal);
  verb->add_option("--margin", args->margin, "Planner's initial benefit margin (default 0.5)")
      ->check(kFiniteNumber);
  verb->add_option("--max-margin", args->maxMargin,
                   "Upper bound of the margin the planner's outcome loop may reach (default 3)")
      ->check(kFiniteNumber);
  verb->add_option("--margin-step", args->marginStep,
                   "Step of the outcome loop's margin changes (default 0.1; 0: the margin stays "
                   "at --margin)")
      ->check(kFiniteNumber);
  verb->add_flag("--no-vm-moves", args->noVmMoves, "Atoll resizes islands only, moves no VM");
  verb->add_option("--balance-band", args->balanceBand,
                   "Planner's proactive balance band (default 0: off)")
      ->check(kFiniteNumber);
  verb->add_option("--same-role-cooldown", args->sameRoleCooldownSeconds,
                   "Seconds before an island relieved (or giving) may be so again (default "
                   "7200, the whole island cooldown)")
      ->check(kFiniteNumber);
  verb->add_flag("--donor-peak-over-cooldown", args->donorPeakOverCooldown,
                 "Planner: a donor keeps its p95 peak over the island cooldown, not the horizon");
  verb->add_flag("--donor-harm-over-cooldown", args->donorHarmOverCooldown,
                 "Planner: an expected-unmet donor's added unmet demand counts over the island "
                 "cooldown its resize starts, not the horizon (the default)");
  verb->add_flag("--donor-harm-over-horizon", args->donorHarmOverHorizon,
                 "Planner: an expected-unmet donor's added unmet demand counts over the horizon "
                 "alone");
  verb->add_option("--risk-threshold", args->riskThreshold,
                   "Planner: P(demand > capacity) at some step of the horizon that puts an "
                   "island at risk (default 0.05)")
      ->check(kFiniteNumber);
  verb->add_option("--min-risk-p50-share", args->minRiskP50Share,
                   "Planner: an island is at risk only while its p50 peak is this share of its "
                   "capacity (default 0.6; 0: off)")
      ->check(kFiniteNumber);
  verb->add_option("--donor-rule", args->donorRule,
                   "Planner: which islands give CPUs to one at risk: peak (only CPUs beyond "
                   "the donor's p95 peak x headroom) or expected-unmet (any k CPUs whose "
                   "relief, less the donor's added expected unmet demand, pays) or "
                   "peak-then-expected-unmet (expected-unmet where the peak rule finds no "
                   "donor; the default)");
  verb->add_option("--min-relief-share", args->minReliefShare,
                   "Planner: share of the needed resize's relief an action must bring "
                   "(default 0.5; 0: off)")
      ->check(kFiniteNumber);
  verb->add_option("--forecast-recent-quantile-rate", args->forecastRecentQuantileRate,
                   "Forecaster's recent-p95 learning rate (default: the forecaster's own)")
      ->check(kFiniteNumber)
      ->check(CLI::Range(0.0, 1.0));
  verb->add_option("--threshold-upper", args->thresholdUpper,
                   "Threshold policy: act above this utilisation (default 0.85)")
      ->check(kFiniteNumber);
  verb->add_option("--threshold-target", args->thresholdTarget,
                   "Threshold policy: utilisation to restore and donor ceiling (default 0.7)")
      ->check(kFiniteNumber);
  verb->add_flag("--quiet", args->quiet, "No progress on stderr");
  verb->callback([args] { run(*args); });
}

}  // namespace Atoll::cli
