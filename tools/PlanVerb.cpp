// atoll plan: what the running atolld's planner decided and why.
//   show     the latest pass: mode, islands, and each decision with its reason
//   history  the recent decision records, taken and declined, newest last
//   tuning   the margin and per-island trust, the recent changes and their reasons
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "tools/DaemonClient.h"
#include "tools/JsonCells.h"
#include "tools/Verbs.h"

namespace Atoll::cli {

namespace {

struct PlanArgs {
  bool json = false;
  DaemonConnection connection;
};

// One line per decision: id, action, donor -> receiver, taken, rule, then the reason.
void printDecisions(const nlohmann::json& decisions) {
  if (decisions.empty()) {
    std::cout << "(no decisions)\n";
    return;
  }
  std::printf("%-6s %-14s %-24s %-8s %-6s %-18s %10s %10s\n", "ID", "ACTION", "FROM -> TO", "MODE",
              "TAKEN", "RULE", "BENEFIT", "COST");
  for (const auto& d : decisions) {
    std::string route = textCell(d, "from") + " -> " + textCell(d, "to");
    if (route == " -> ") route = "-";
    const nlohmann::json cost = d.value("cost_core_s", nlohmann::json::object());
    std::printf("%-6s %-14s %-24s %-8s %-6s %-18s %10s %10s\n", textCell(d, "id").c_str(),
                textCell(d, "action").c_str(), route.c_str(), textCell(d, "mode").c_str(),
                d.value("taken", false) ? "yes" : "no", textCell(d, "rule").c_str(),
                numberCell(d.value("benefit_core_s", nlohmann::json())).c_str(),
                numberCell(cost.value("total", nlohmann::json())).c_str());
    std::cout << "       " << textCell(d, "reason") << "\n";
  }
}

// A count the daemon reports, or `fallback` when it is absent or not a
// count (an older daemon).
uint64_t countCell(const nlohmann::json& object, const char* key, uint64_t fallback) {
  const nlohmann::json value = object.value(key, nlohmann::json());
  return value.is_number_unsigned() ? value.get<uint64_t>() : fallback;
}

nlohmann::json fetch(const PlanArgs& args, const std::string& path) {
  DaemonClient client(args.connection);
  DaemonReply reply = expectSuccess(client.get(path), args.json);
  if (args.json) std::cout << reply.body.dump(2) << "\n";
  return reply.body;
}

void runShow(const PlanArgs& args) {
  nlohmann::json plan = fetch(args, "/v1/plan");
  if (args.json) return;
  std::cout << "pass " << textCell(plan, "pass") << ", mode " << textCell(plan, "mode")
            << ", margin " << numberCell(plan.value("margin", nlohmann::json()), "%.2f")
            << ", horizon " << textCell(plan, "horizon_steps") << " steps, "
            << textCell(plan, "vms") << " VMs with a forecast\n\n";
  std::printf("%-16s %-7s %-12s %9s %8s %-8s %s\n", "ISLAND", "KIND", "CPUS", "CAPACITY", "MEMBERS",
              "MODE", "PLANNED");
  for (const auto& island : plan.value("islands", nlohmann::json::array())) {
    std::string planned =
        island.value("planned", false) ? "yes" : "no: " + textCell(island, "not_planned");
    std::printf("%-16s %-7s %-12s %9s %8s %-8s %s\n", textCell(island, "name").c_str(),
                textCell(island, "kind").c_str(), textCell(island, "cpus").c_str(),
                numberCell(island.value("capacity_cores", nlohmann::json()), "%.2f").c_str(),
                textCell(island, "members").c_str(), textCell(island, "mode").c_str(),
                planned.c_str());
  }
  std::cout << "\n";
  printDecisions(plan.value("decisions", nlohmann::json::array()));
}

void runHistory(const PlanArgs& args) {
  nlohmann::json history = fetch(args, "/v1/plan/history");
  if (args.json) return;
  printDecisions(history.value("decisions", nlohmann::json::array()));
}

void runTuning(const PlanArgs& args) {
  nlohmann::json tuning = fetch(args, "/v1/plan/tuning");
  if (args.json) return;
  const nlohmann::json bounds = tuning.value("margin_bounds", nlohmann::json::array());
  std::cout << "margin " << numberCell(tuning.value("margin", nlohmann::json()), "%.3f");
  if (bounds.size() == 2)
    std::cout << " (bounds " << numberCell(bounds[0], "%.2f") << ".."
              << numberCell(bounds[1], "%.2f") << ")";
  std::cout << "\n";
  const nlohmann::json trust = tuning.value("trust", nlohmann::json::object());
  if (trust.empty()) std::cout << "trust: 1.0 for every island (no outcome measured yet)\n";
  for (const auto& [island, value] : trust.items())
    std::cout << "trust " << island << ": " << numberCell(value, "%.3f") << "\n";
  std::cout << "outcomes: "
            << numberCell(tuning.value("outcomes_recorded", nlohmann::json()), "%.0f")
            << " measured, "
            << numberCell(tuning.value("outcomes_measuring", nlohmann::json()), "%.0f")
            << " in their window\n";
  if (const nlohmann::json last = tuning.value("last_outcome", nlohmann::json()); last.is_object())
    std::cout << "last outcome: decision " << textCell(last, "decision") << " ("
              << textCell(last, "island") << "): predicted "
              << numberCell(last.value("predicted_core_s", nlohmann::json()), "%.1f")
              << " core-s of relief, realised "
              << numberCell(last.value("realised_core_s", nlohmann::json()), "%.1f") << "\n";
  const nlohmann::json changes = tuning.value("changes", nlohmann::json::array());
  const uint64_t total = countCell(tuning, "changes_total", changes.size());
  if (total == 0 && changes.empty()) {
    std::cout << "no tuning changes yet\n";
    return;
  }
  // The daemon lists only the changes since it started, and of those only
  // the most recent; the total counts every change since the planner first
  // ran.
  const uint64_t unlisted = total > changes.size() ? total - changes.size() : 0;
  const uint64_t beforeStart = std::min(unlisted, countCell(tuning, "changes_before_start", 0));
  std::cout << "tuning changes: " << total << " in all, " << changes.size() << " listed\n";
  auto changesText = [](uint64_t count) {
    return std::to_string(count) + (count == 1 ? " change" : " changes");
  };
  if (beforeStart > 0) std::cout << changesText(beforeStart) << " before this start, not listed\n";
  if (unlisted > beforeStart)
    std::cout << "older " << changesText(unlisted - beforeStart)
              << " since this start, not listed (only the most recent are kept)\n";
  if (changes.empty()) return;
  std::printf("\n%-10s %-12s %-7s %9s %9s  %s\n", "DECISION", "ISLAND", "FIELD", "BEFORE", "AFTER",
              "REASON");
  for (const auto& c : changes)
    std::printf(
        "%-10s %-12s %-7s %9s %9s  %s\n", textCell(c, "decision").c_str(),
        c.value("island", "").empty() ? "(host)" : textCell(c, "island").c_str(),
        textCell(c, "field").c_str(), numberCell(c.value("before", nlohmann::json())).c_str(),
        numberCell(c.value("after", nlohmann::json())).c_str(), textCell(c, "reason").c_str());
}

}  // namespace

void addPlanVerb(CLI::App& app) {
  CLI::App* verb = app.add_subcommand(
      "plan", "What atolld's planner decided (island resizes, VM moves) and why");
  verb->require_subcommand(1);
  struct Sub {
    const char* name;
    const char* help;
    void (*run)(const PlanArgs&);
  };
  for (const Sub& sub :
       {Sub{"show", "The latest planning pass: islands and decisions with their reasons", runShow},
        Sub{"history", "Recent decisions, taken and declined, newest last", runHistory},
        Sub{"tuning", "The planner's margin and per-island trust, and why they changed",
            runTuning}}) {
    auto args = std::make_shared<PlanArgs>();
    CLI::App* command = verb->add_subcommand(sub.name, sub.help);
    command->add_flag("--json", args->json, "Print the daemon's answer as JSON");
    addDaemonOptions(*command, args->connection);
    command->footer("Exit status: 0 ok, 1 no pass yet, 3 atolld not running, 4 permission denied.");
    command->callback([args, run = sub.run] { run(*args); });
  }
}

}  // namespace Atoll::cli
