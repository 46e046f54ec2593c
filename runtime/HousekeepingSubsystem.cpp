#include "runtime/HousekeepingSubsystem.h"

#include <spdlog/spdlog.h>

namespace Atoll {

HousekeepingSubsystem::HousekeepingSubsystem(HostJournal& journal, prometheus::Registry& registry,
                                             uint64_t compactJournalBytes)
    : journal_(journal),
      compactJournalBytes_(compactJournalBytes),
      journalBytes_(prometheus::BuildGauge()
                        .Name("atoll_journal_bytes")
                        .Help("Size of the journal file")
                        .Register(registry)
                        .Add({})),
      journalRecords_(prometheus::BuildGauge()
                          .Name("atoll_journal_records")
                          .Help("Records in the journal file since the last snapshot")
                          .Register(registry)
                          .Add({})),
      lastSequence_(prometheus::BuildGauge()
                        .Name("atoll_journal_last_sequence")
                        .Help("Sequence number of the newest journaled record")
                        .Register(registry)
                        .Add({})),
      compactions_(prometheus::BuildCounter()
                       .Name("atoll_journal_compactions_total")
                       .Help("Snapshots written to compact the journal")
                       .Register(registry)
                       .Add({})) {}

Result<void> HousekeepingSubsystem::runPhase(Phase phase, const TickContext&) {
  JournalStats stats = journal_.stats();
  if (phase == Phase::Act && stats.journalBytes > compactJournalBytes_) {
    if (auto compacted = journal_.compact(); !compacted) return compacted.error();
    compactions_.Increment();
    spdlog::info("event=journal_compacted bytes_before={} records_before={} sequence={}",
                 stats.journalBytes, stats.journalRecords, stats.lastSequence);
    stats = journal_.stats();
  }
  journalBytes_.Set(static_cast<double>(stats.journalBytes));
  journalRecords_.Set(static_cast<double>(stats.journalRecords));
  lastSequence_.Set(static_cast<double>(stats.lastSequence));
  return ok();
}

nlohmann::json HousekeepingSubsystem::describe() const {
  JournalStats stats = journal_.stats();
  return {{"journal_bytes", stats.journalBytes},
          {"journal_records", stats.journalRecords},
          {"last_sequence", stats.lastSequence},
          {"snapshot_sequence", stats.snapshotSequence},
          {"compactions", stats.compactions},
          {"compact_journal_bytes", compactJournalBytes_.load()}};
}

}  // namespace Atoll
