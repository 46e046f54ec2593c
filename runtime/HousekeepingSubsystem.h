#pragma once
// The daemon's own upkeep of its durable state: publishes the journal's size
// each tick (collect) and, when the journal has grown past the configured
// size, folds it into a new snapshot (act).
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <atomic>

#include "runtime/HostJournal.h"
#include "runtime/Subsystem.h"

namespace Atoll {

class HousekeepingSubsystem final : public Subsystem {
 public:
  HousekeepingSubsystem(HostJournal& journal, prometheus::Registry& registry,
                        uint64_t compactJournalBytes);

  std::string_view name() const override { return "housekeeping"; }
  bool runsIn(Phase phase) const override { return phase == Phase::Collect || phase == Phase::Act; }
  Result<void> runPhase(Phase phase, const TickContext& context) override;
  nlohmann::json describe() const override;

  void setCompactJournalBytes(uint64_t bytes) { compactJournalBytes_ = bytes; }

 private:
  HostJournal& journal_;
  std::atomic<uint64_t> compactJournalBytes_;
  prometheus::Gauge& journalBytes_;
  prometheus::Gauge& journalRecords_;
  prometheus::Gauge& lastSequence_;
  prometheus::Counter& compactions_;
};

}  // namespace Atoll
