#include "runtime/ActionLog.h"

namespace Atoll {

std::string_view actionOutcomeName(ActionOutcome outcome) {
  switch (outcome) {
    case ActionOutcome::Completed:
      return "completed";
    case ActionOutcome::RolledBack:
      return "rolled_back";
    case ActionOutcome::RollbackIncomplete:
      return "rollback_incomplete";
  }
  return "unknown";
}

namespace {

Error recordError(uint64_t sequence, const nlohmann::json& record, std::string detail) {
  return Error::invalid("apply journal record " + std::to_string(sequence), "",
                        record.dump().substr(0, 200), std::move(detail));
}

}  // namespace

Result<uint64_t> ActionLog::begin(const std::string& subsystem, const std::string& kind,
                                  nlohmann::json params) {
  if (journal_ == nullptr)
    return Error::invalid("begin action", kind, "", "the action log is not attached");
  nlohmann::json record = {{"type", "action.begin"},
                           {"subsystem", subsystem},
                           {"kind", kind},
                           {"params", std::move(params)}};
  return journal_->transact([&](HostJournal::Transaction& txn) -> Result<uint64_t> {
    auto sequence = txn.commit(record);
    if (!sequence) return sequence.error();
    if (auto applied = apply(*sequence, record); !applied) return applied.error();
    return *sequence;
  });
}

Result<void> ActionLog::finish(uint64_t id, ActionOutcome outcome, const std::string& detail) {
  if (journal_ == nullptr)
    return Error::invalid("finish action", std::to_string(id), "",
                          "the action log is not attached");
  nlohmann::json record = {{"type", "action.finish"},
                           {"id", id},
                           {"outcome", actionOutcomeName(outcome)},
                           {"detail", detail}};
  return journal_->transact([&](HostJournal::Transaction& txn) -> Result<void> {
    {
      std::lock_guard lock(mutex_);
      if (!pending_.contains(id))
        return Error::invalid("finish action", std::to_string(id), "",
                              "no such action is in flight");
    }
    auto sequence = txn.commit(record);
    if (!sequence) return sequence.error();
    return apply(*sequence, record);
  });
}

std::vector<PendingAction> ActionLog::pending() const {
  std::lock_guard lock(mutex_);
  std::vector<PendingAction> out;
  for (const auto& [id, action] : pending_) out.push_back(action);
  return out;
}

uint64_t ActionLog::finishedCount() const {
  std::lock_guard lock(mutex_);
  return finished_;
}

Result<void> ActionLog::apply(uint64_t sequence, const nlohmann::json& record) {
  const auto& type = record.at("type");
  std::lock_guard lock(mutex_);
  if (type == "action.begin") {
    if (!record.contains("subsystem") || !record["subsystem"].is_string() ||
        !record.contains("kind") || !record["kind"].is_string())
      return recordError(sequence, record, "missing subsystem or kind");
    pending_[sequence] = PendingAction{sequence, record["subsystem"].get<std::string>(),
                                       record["kind"].get<std::string>(),
                                       record.value("params", nlohmann::json::object())};
    return ok();
  }
  if (type == "action.finish") {
    if (!record.contains("id") || !record["id"].is_number_unsigned())
      return recordError(sequence, record, "missing id");
    pending_.erase(record["id"].get<uint64_t>());
    ++finished_;
    return ok();
  }
  return recordError(sequence, record, "unknown action record type");
}

Result<void> ActionLog::restore(const nlohmann::json& section) {
  std::map<uint64_t, PendingAction> pending;
  uint64_t finished = 0;
  if (!section.empty()) {
    if (!section.is_object() || !section.contains("pending") || !section["pending"].is_array())
      return Error::invalid("restore snapshot section", "action", section.dump().substr(0, 200),
                            "malformed action section");
    for (const auto& entry : section["pending"]) {
      if (!entry.is_object() || !entry.contains("id") || !entry["id"].is_number_unsigned() ||
          !entry.contains("subsystem") || !entry["subsystem"].is_string() ||
          !entry.contains("kind") || !entry["kind"].is_string())
        return Error::invalid("restore snapshot section", "action", entry.dump().substr(0, 200),
                              "malformed pending action");
      uint64_t id = entry["id"].get<uint64_t>();
      pending[id] =
          PendingAction{id, entry["subsystem"].get<std::string>(), entry["kind"].get<std::string>(),
                        entry.value("params", nlohmann::json::object())};
    }
    finished = section.value("finished", uint64_t{0});
  }
  std::lock_guard lock(mutex_);
  pending_ = std::move(pending);
  finished_ = finished;
  return ok();
}

nlohmann::json ActionLog::snapshot() const {
  std::lock_guard lock(mutex_);
  nlohmann::json pending = nlohmann::json::array();
  for (const auto& [id, action] : pending_)
    pending.push_back({{"id", id},
                       {"subsystem", action.subsystem},
                       {"kind", action.kind},
                       {"params", action.params}});
  return {{"pending", std::move(pending)}, {"finished", finished_}};
}

}  // namespace Atoll
