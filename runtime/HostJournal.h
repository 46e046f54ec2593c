#pragma once
// The host's durable record of every state change and every action: the
// journal file plus the snapshot file in the state directory, shared by the
// parts that need durability (the embedded state store, the action log).
//
// Each part is a JournalConsumer that owns one snapshot section and the record
// types that start with its section name ("state.put" belongs to "state").
// Live changes and start-up replay run the same apply() code: a writer commits
// a record inside transact() and then applies it, under the journal lock, so
// what is in memory is exactly what replay would rebuild.
//
// Start-up: take an exclusive lock on the directory (one daemon per state
// directory), restore the snapshot, drop a torn journal tail, replay the
// records newer than the snapshot. Compaction writes a snapshot of every
// section and clears the journal; a crash between the two leaves records the
// snapshot already holds, which replay skips by sequence number.
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/Journal.h"
#include "util/Fs.h"
#include "util/Result.h"
#include "util/UniqueFd.h"

namespace Atoll {

class JournalConsumer {
 public:
  virtual ~JournalConsumer() = default;
  // Snapshot section name and record-type prefix.
  virtual std::string_view section() const = 0;
  // Replaces the in-memory state with a snapshot section.
  virtual Result<void> restore(const nlohmann::json& section) = 0;
  // Applies one committed record (live or during replay).
  virtual Result<void> apply(uint64_t sequence, const nlohmann::json& record) = 0;
  virtual nlohmann::json snapshot() const = 0;
};

struct JournalStats {
  std::string directory;
  uint64_t journalBytes = 0;
  uint64_t journalRecords = 0;
  uint64_t lastSequence = 0;
  uint64_t snapshotSequence = 0;
  uint64_t compactions = 0;
  uint64_t replayedRecords = 0;   // at open
  uint64_t droppedTailBytes = 0;  // at open
  std::string droppedTailReason;  // at open, empty when the tail was whole
};

class HostJournal {
 public:
  static constexpr const char* kJournalName = "journal";
  static constexpr const char* kSnapshotName = "snapshot";
  static constexpr const char* kLockName = "lock";

  // Creates the directory (mode 0750) when absent. Consumers must outlive the
  // journal.
  static Result<std::unique_ptr<HostJournal>> open(const std::string& directory,
                                                   std::vector<JournalConsumer*> consumers);

  class Transaction {
   public:
    // Appends the record (its "type" must belong to a consumer) and returns
    // its sequence number once it is durable.
    Result<uint64_t> commit(const nlohmann::json& record);

   private:
    friend class HostJournal;
    explicit Transaction(HostJournal& journal) : journal_(journal) {}
    HostJournal& journal_;
  };

  // Runs `change(Transaction&)` under the journal lock and returns its result.
  template <typename Change>
  auto transact(Change&& change) {
    std::lock_guard lock(mutex_);
    Transaction transaction(*this);
    return change(transaction);
  }

  Result<void> compact();
  JournalStats stats() const;

 private:
  HostJournal(Dir dir, UniqueFd lock, Journal journal, std::vector<JournalConsumer*> consumers)
      : dir_(std::move(dir)),
        lock_(std::move(lock)),
        journal_(std::move(journal)),
        consumers_(std::move(consumers)) {}
  Result<void> replay(const JournalScan& scan, uint64_t snapshotSequence);
  JournalConsumer* consumerFor(const nlohmann::json& record) const;

  mutable std::mutex mutex_;
  Dir dir_;
  UniqueFd lock_;
  Journal journal_;
  std::vector<JournalConsumer*> consumers_;
  std::atomic<uint64_t> lastSequence_{0};
  std::atomic<uint64_t> snapshotSequence_{0};
  std::atomic<uint64_t> journalBytes_{0};
  std::atomic<uint64_t> journalRecords_{0};
  std::atomic<uint64_t> compactions_{0};
  uint64_t replayedRecords_ = 0;
  uint64_t droppedTailBytes_ = 0;
  std::string droppedTailReason_;
};

}  // namespace Atoll
