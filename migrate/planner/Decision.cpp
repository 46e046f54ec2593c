#include "migrate/planner/Decision.h"

#include <cmath>

namespace Atoll::planner {

std::string_view actionName(ActionKind kind) {
  switch (kind) {
    case ActionKind::None:
      return "none";
    case ActionKind::ResizeIsland:
      return "resize-island";
    case ActionKind::MoveVm:
      return "move-vm";
  }
  return "none";
}

std::string_view ruleName(Rule rule) {
  switch (rule) {
    case Rule::BenefitExceedsCost:
      return "benefit-exceeds-cost";
    case Rule::BelowMargin:
      return "below-margin";
    case Rule::NoRisk:
      return "no-risk";
    case Rule::NoDonor:
      return "no-donor";
    case Rule::Dwell:
      return "dwell";
    case Rule::HostBudget:
      return "host-budget";
    case Rule::IslandBudget:
      return "island-budget";
    case Rule::Hysteresis:
      return "hysteresis";
    case Rule::InFlight:
      return "in-flight";
    case Rule::Revert:
      return "revert";
    case Rule::Cooldown:
      return "cooldown";
    case Rule::SmallRelief:
      return "small-relief";
    case Rule::StaleForecast:
      return "stale-forecast";
  }
  return "no-risk";
}

std::vector<uint64_t> PlanResult::toExecute() const {
  std::vector<uint64_t> ids;
  for (const auto& d : decisions)
    if (d.execute) ids.push_back(d.id);
  return ids;
}

nlohmann::json toJson(const IslandView& view) {
  return {{"island", view.island},
          {"capacity_before", view.capacityBefore},
          {"capacity_after", view.capacityAfter},
          {"p50_peak", view.p50Peak},
          {"p95_peak", view.p95Peak},
          {"contention_before", view.contentionBefore},
          {"contention_after", view.contentionAfter},
          {"overload_before_core_s", view.overloadBefore},
          {"overload_after_core_s", view.overloadAfter},
          {"trust", view.trust}};
}

nlohmann::json toJson(const CostBreakdown& cost) {
  return {{"page_migration", cost.pageMigration},
          {"cache_warmup", cost.cacheWarmup},
          {"disruption", cost.disruption},
          {"action_cpu", cost.actionCpu},
          {"total", cost.total()}};
}

nlohmann::json toJson(const Decision& decision) {
  nlohmann::json out = {{"id", decision.id},
                        {"at_ns", decision.atNs},
                        {"action", actionName(decision.action)},
                        {"from", decision.fromIsland},
                        {"to", decision.toIsland},
                        {"benefit_core_s", decision.benefit},
                        {"cost_core_s", toJson(decision.cost)},
                        {"margin", decision.margin},
                        {"horizon_s", decision.horizonSeconds},
                        {"first_risk_step", decision.firstRiskStep},
                        {"rule", ruleName(decision.rule)},
                        {"taken", decision.taken},
                        {"execute", decision.execute},
                        {"reason", decision.reason}};
  if (decision.action == ActionKind::ResizeIsland) out["cpus_moved"] = decision.cpusMoved;
  if (decision.action == ActionKind::MoveVm) {
    out["vm"] = decision.vm;
    out["vm_name"] = decision.vmName;
    out["vm_resident_bytes"] = decision.vmResidentBytes;
    out["target_mem_nodes"] = decision.targetMemNodes;
  }
  if (decision.reverses) out["reverses"] = *decision.reverses;
  out["islands"] = nlohmann::json::array();
  for (const auto& view : decision.islands) out["islands"].push_back(toJson(view));
  return out;
}

Result<Decision> executedActionFromJson(const nlohmann::json& record) {
  const std::string what = "planner action record";
  auto refuse = [&](const char* field, const std::string& detail) {
    return Error::invalid("read", what, field, detail);
  };
  if (!record.is_object()) return refuse("", "not a JSON object");
  Decision d;
  d.taken = true;
  d.execute = true;
  d.rule = Rule::BenefitExceedsCost;
  const std::string action = record.value("action", "");
  if (action == actionName(ActionKind::ResizeIsland))
    d.action = ActionKind::ResizeIsland;
  else if (action == actionName(ActionKind::MoveVm))
    d.action = ActionKind::MoveVm;
  else
    return refuse("action", "'" + action + "' is not an action that changes anything");
  if (!record.contains("id") || !record["id"].is_number_unsigned() || record["id"] == 0)
    return refuse("id", "missing or not a positive integer");
  d.id = record["id"].get<uint64_t>();
  if (!record.contains("at_ns") || !record["at_ns"].is_number_integer())
    return refuse("at_ns", "missing or not an integer");
  d.atNs = record["at_ns"].get<int64_t>();
  for (auto [field, into] : {std::pair{"from", &d.fromIsland}, std::pair{"to", &d.toIsland}}) {
    if (!record.contains(field) || !record[field].is_string())
      return refuse(field, "missing or not a string");
    *into = record[field].get<std::string>();
  }
  if (d.action == ActionKind::ResizeIsland) {
    if (!record.contains("cpus_moved") || !record["cpus_moved"].is_array())
      return refuse("cpus_moved", "missing or not an array");
    for (const auto& cpu : record["cpus_moved"]) {
      if (!cpu.is_number_unsigned()) return refuse("cpus_moved", "holds a non-CPU number");
      d.cpusMoved.push_back(cpu.get<unsigned>());
    }
  } else {
    if (!record.contains("vm_name") || !record["vm_name"].is_string())
      return refuse("vm_name", "missing or not a string");
    d.vmName = record["vm_name"].get<std::string>();
    if (record.contains("vm") && record["vm"].is_number_unsigned())
      d.vm = record["vm"].get<uint32_t>();
  }
  if (record.contains("reverses")) {
    if (!record["reverses"].is_number_unsigned()) return refuse("reverses", "not an integer");
    d.reverses = record["reverses"].get<uint64_t>();
  }
  if (record.value("rule", "") == ruleName(Rule::Revert)) d.rule = Rule::Revert;
  // The horizon and the island views measure the action's outcome; records
  // written before they were read back may lack them.
  auto finite = [](const nlohmann::json& v) {
    return v.is_number() && std::isfinite(v.get<double>());
  };
  if (record.contains("horizon_s")) {
    if (!finite(record["horizon_s"]) || record["horizon_s"].get<double>() < 0)
      return refuse("horizon_s", "not a finite number of seconds");
    d.horizonSeconds = record["horizon_s"].get<double>();
  }
  if (record.contains("islands")) {
    if (!record["islands"].is_array()) return refuse("islands", "not an array");
    for (const auto& entry : record["islands"]) {
      if (!entry.is_object() || !entry.contains("island") || !entry["island"].is_string())
        return refuse("islands", "an island view without its island's name");
      IslandView view;
      view.island = entry["island"].get<std::string>();
      for (auto [field, into] :
           {std::pair{"capacity_before", &view.capacityBefore},
            std::pair{"capacity_after", &view.capacityAfter}, std::pair{"p50_peak", &view.p50Peak},
            std::pair{"p95_peak", &view.p95Peak},
            std::pair{"contention_before", &view.contentionBefore},
            std::pair{"contention_after", &view.contentionAfter},
            std::pair{"overload_before_core_s", &view.overloadBefore},
            std::pair{"overload_after_core_s", &view.overloadAfter},
            std::pair{"trust", &view.trust}}) {
        if (!entry.contains(field)) continue;
        if (!finite(entry[field]))
          return refuse("islands", std::string("'") + field + "' of island '" + view.island +
                                       "' is not a finite number");
        *into = entry[field].get<double>();
      }
      d.islands.push_back(std::move(view));
    }
  }
  return d;
}

nlohmann::json toJson(const PlanResult& result) {
  nlohmann::json out = {{"now_ns", result.nowNs}, {"decisions", nlohmann::json::array()}};
  for (const auto& d : result.decisions) out["decisions"].push_back(toJson(d));
  return out;
}

nlohmann::json toJson(const TuningRecord& record) {
  return {{"at_ns", record.atNs},
          {"decision", record.decision},
          {"island", record.island},
          {"field", record.field},
          {"before", record.before},
          {"after", record.after},
          {"predicted_core_s", record.predicted},
          {"realised_core_s", record.realised},
          {"reason", record.reason}};
}

}  // namespace Atoll::planner
