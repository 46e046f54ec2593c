#include "runtime/HostJournal.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <cerrno>

#include "runtime/SnapshotFile.h"
#include "runtime/StateFiles.h"
#include "util/UniqueFd.h"

namespace Atoll {

namespace {

Result<void> makeDirectories(const std::string& path) {
  std::string partial;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    partial = path.substr(0, slash);
    start = slash + 1;
    if (partial.empty()) continue;
    if (::mkdir(partial.c_str(), 0750) != 0) {
      if (errno == EEXIST) continue;
      return Error::fromErrno("mkdir", partial, errno);
    }
    // A new directory's entry lives in its parent: until the parent is
    // synced, a crash can take the directory away with the journal entries
    // acknowledged in it.
    size_t cut = partial.rfind('/');
    std::string parent = cut == std::string::npos ? "." : cut == 0 ? "/" : partial.substr(0, cut);
    UniqueFd parentFd(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (parentFd.get() < 0) return Error::fromErrno("open", parent, errno);
    if (::fsync(parentFd.get()) != 0) return Error::fromErrno("fsync", parent, errno);
  }
  return ok();
}

}  // namespace

Result<std::unique_ptr<HostJournal>> HostJournal::open(const std::string& directory,
                                                       std::vector<JournalConsumer*> consumers) {
  if (auto made = makeDirectories(directory); !made) return made.error();
  auto dir = Dir::open(directory);
  if (!dir) return dir.error();

  auto lock = openStateFile(*dir, kLockName, O_RDWR | O_CREAT);
  if (!lock) return lock.error();
  if (::flock(lock->get(), LOCK_EX | LOCK_NB) != 0) {
    int saved = errno;
    Error error = Error::fromErrno("lock", directory + "/" + kLockName, saved);
    if (saved == EWOULDBLOCK) error.detail = "another atolld is using this state directory";
    return error;
  }

  auto snapshot = readSnapshotFile(*dir, kSnapshotName);
  if (!snapshot) return snapshot.error();
  uint64_t snapshotSequence = 0;
  if (*snapshot) {
    snapshotSequence = (*snapshot)->sequence;
    auto body = nlohmann::json::parse((*snapshot)->body, nullptr, false);
    if (body.is_discarded() || !body.is_object() || !body.contains("sections") ||
        !body["sections"].is_object())
      return Error::invalid("read snapshot", directory + "/" + kSnapshotName, "",
                            "the body is not a JSON object with \"sections\"");
    for (JournalConsumer* consumer : consumers) {
      std::string name(consumer->section());
      nlohmann::json section =
          body["sections"].contains(name) ? body["sections"][name] : nlohmann::json::object();
      if (auto restored = consumer->restore(section); !restored) return restored.error();
    }
  }

  JournalScan scan;
  auto journal = Journal::open(*dir, kJournalName, scan);
  if (!journal) return journal.error();

  std::unique_ptr<HostJournal> out(new HostJournal(std::move(*dir), std::move(*lock),
                                                   std::move(*journal), std::move(consumers)));
  out->snapshotSequence_ = snapshotSequence;
  out->lastSequence_ = snapshotSequence;
  out->droppedTailBytes_ = scan.droppedBytes;
  out->droppedTailReason_ = scan.dropReason;
  if (auto replayed = out->replay(scan, snapshotSequence); !replayed) return replayed.error();
  out->journalBytes_ = out->journal_.sizeBytes();
  out->journalRecords_ = out->journal_.recordCount();
  return out;
}

JournalConsumer* HostJournal::consumerFor(const nlohmann::json& record) const {
  if (!record.is_object() || !record.contains("type") || !record["type"].is_string())
    return nullptr;
  const std::string& type = record["type"].get_ref<const std::string&>();
  size_t dot = type.find('.');
  if (dot == std::string::npos) return nullptr;
  std::string_view prefix(type.data(), dot);
  for (JournalConsumer* consumer : consumers_)
    if (consumer->section() == prefix) return consumer;
  return nullptr;
}

Result<void> HostJournal::replay(const JournalScan& scan, uint64_t snapshotSequence) {
  for (const JournalRecord& record : scan.records) {
    if (record.sequence <= snapshotSequence) continue;  // already inside the snapshot
    auto parsed = nlohmann::json::parse(record.payload, nullptr, false);
    JournalConsumer* consumer = parsed.is_discarded() ? nullptr : consumerFor(parsed);
    if (consumer == nullptr)
      return Error::invalid("replay", journal_.path(), record.payload.substr(0, 200),
                            "record " + std::to_string(record.sequence) +
                                " has no known type; refusing to start without it");
    if (auto applied = consumer->apply(record.sequence, parsed); !applied) return applied.error();
    lastSequence_ = record.sequence;
    ++replayedRecords_;
  }
  return ok();
}

Result<uint64_t> HostJournal::Transaction::commit(const nlohmann::json& record) {
  HostJournal& j = journal_;
  if (j.consumerFor(record) == nullptr)
    return Error::invalid("commit", j.journal_.path(), record.dump().substr(0, 200),
                          "record type belongs to no journal section");
  uint64_t sequence = j.lastSequence_ + 1;
  if (auto appended = j.journal_.append(sequence, record.dump()); !appended)
    return appended.error();
  j.lastSequence_ = sequence;
  j.journalBytes_ = j.journal_.sizeBytes();
  j.journalRecords_ = j.journal_.recordCount();
  return sequence;
}

Result<void> HostJournal::compact() {
  std::lock_guard lock(mutex_);
  nlohmann::json sections = nlohmann::json::object();
  for (JournalConsumer* consumer : consumers_)
    sections[std::string(consumer->section())] = consumer->snapshot();
  nlohmann::json body = {{"sections", std::move(sections)}};
  uint64_t sequence = lastSequence_;
  if (auto written = writeSnapshotFile(dir_, kSnapshotName, Snapshot{sequence, body.dump()});
      !written)
    return written.error();
  snapshotSequence_ = sequence;
  if (auto cleared = journal_.clear(); !cleared) return cleared.error();
  journalBytes_ = journal_.sizeBytes();
  journalRecords_ = journal_.recordCount();
  ++compactions_;
  return ok();
}

JournalStats HostJournal::stats() const {
  JournalStats out;
  out.directory = dir_.path();
  out.journalBytes = journalBytes_;
  out.journalRecords = journalRecords_;
  out.lastSequence = lastSequence_;
  out.snapshotSequence = snapshotSequence_;
  out.compactions = compactions_;
  out.replayedRecords = replayedRecords_;
  out.droppedTailBytes = droppedTailBytes_;
  out.droppedTailReason = droppedTailReason_;
  return out;
}

}  // namespace Atoll
