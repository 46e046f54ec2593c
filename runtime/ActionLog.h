#pragma once
// The journal of actions Atoll takes on the host (write a cgroup file, move a
// task, start a migration). A subsystem calls begin() before it touches the
// host and finish() once the action is complete or undone; both records are
// durable before the calls return. An action whose begin has no finish was in
// flight when the daemon died: at the next start the daemon hands it to the
// subsystem that began it (Subsystem::recover), which completes it or rolls
// it back, and the outcome is journaled, so no action stays half-applied.
#include <cstdint>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/HostJournal.h"

namespace Atoll {

// RollbackIncomplete: the action failed and undoing it could not put
// everything back, so the host holds neither the state before nor the one
// asked for; the finish record's detail names what was left.
enum class ActionOutcome { Completed, RolledBack, RollbackIncomplete };
std::string_view actionOutcomeName(ActionOutcome outcome);

struct PendingAction {
  uint64_t id = 0;  // the sequence number of its begin record
  std::string subsystem;
  std::string kind;
  nlohmann::json params;
};

class ActionLog final : public JournalConsumer {
 public:
  void attach(HostJournal& journal) { journal_ = &journal; }

  // Durable before it returns; the caller acts on the host only afterwards.
  Result<uint64_t> begin(const std::string& subsystem, const std::string& kind,
                         nlohmann::json params);
  Result<void> finish(uint64_t id, ActionOutcome outcome, const std::string& detail = {});

  // Begun and not finished, oldest first.
  std::vector<PendingAction> pending() const;
  uint64_t finishedCount() const;

  // JournalConsumer
  std::string_view section() const override { return "action"; }
  Result<void> restore(const nlohmann::json& section) override;
  Result<void> apply(uint64_t sequence, const nlohmann::json& record) override;
  nlohmann::json snapshot() const override;

 private:
  HostJournal* journal_ = nullptr;
  mutable std::mutex mutex_;
  std::map<uint64_t, PendingAction> pending_;
  uint64_t finished_ = 0;
};

}  // namespace Atoll
