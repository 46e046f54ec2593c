#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "runtime/ActionLog.h"
#include "runtime/EmbeddedStateStore.h"
#include "runtime/HostJournal.h"
#include "runtime/SnapshotFile.h"
#include "tests/runtime/TestSupport.h"

namespace Atoll {
namespace {

// The daemon's durable state parts, opened on a directory the way atolld
// opens them.
struct Durable {
  EmbeddedStateStore store;
  ActionLog actions;
  std::unique_ptr<HostJournal> journal;

  static std::unique_ptr<Durable> open(const std::string& dir, std::string* error = nullptr) {
    auto out = std::make_unique<Durable>();
    auto journal = HostJournal::open(dir, {&out->store, &out->actions});
    if (!journal) {
      if (error != nullptr) *error = journal.error().message();
      return nullptr;
    }
    out->journal = std::move(*journal);
    out->store.attach(*out->journal);
    out->actions.attach(*out->journal);
    return out;
  }
};

const ChangeOrigin kTestOrigin{0, 1, "test"};

TEST(EmbeddedStateStore, ChangesSurviveReopening) {
  test::TempDir tmp;
  {
    auto d = Durable::open(tmp.path());
    ASSERT_TRUE(d);
    EXPECT_EQ(d->store.revision(), 0u);
    ASSERT_TRUE(d->store.put(Keyspace::Desired, "vm/a", {{"island", "x"}}, kTestOrigin));
    ASSERT_TRUE(d->store.put(Keyspace::Desired, "vm/b", 2, kTestOrigin));
    ASSERT_TRUE(d->store.put(Keyspace::Facts, "host/x", true, kTestOrigin));
    auto removed = d->store.remove(Keyspace::Desired, "vm/b", kTestOrigin);
    ASSERT_TRUE(removed && *removed);
    auto absent = d->store.remove(Keyspace::Desired, "vm/nope", kTestOrigin);
    ASSERT_TRUE(absent);
    EXPECT_FALSE(*absent);
    EXPECT_EQ(d->store.revision(), 4u);
  }
  auto d = Durable::open(tmp.path());
  ASSERT_TRUE(d);
  EXPECT_EQ(d->store.revision(), 4u);
  auto a = d->store.get(Keyspace::Desired, "vm/a");
  ASSERT_TRUE(a && *a);
  EXPECT_EQ((*a)->value["island"], "x");
  EXPECT_EQ((*a)->revision, 1u);
  EXPECT_FALSE(*d->store.get(Keyspace::Desired, "vm/b"));
  EXPECT_TRUE(*d->store.get(Keyspace::Facts, "host/x"));
  EXPECT_FALSE(*d->store.get(Keyspace::Facts, "vm/a"));
  EXPECT_EQ(d->journal->stats().replayedRecords, 4u);
}

TEST(EmbeddedStateStore, ListsByPrefixInKeyOrder) {
  test::TempDir tmp;
  auto d = Durable::open(tmp.path());
  for (const char* key : {"vm/b", "vm/a", "vmx", "host/1"})
    ASSERT_TRUE(d->store.put(Keyspace::Desired, key, 1, kTestOrigin));
  auto listed = d->store.list(Keyspace::Desired, "vm/");
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].key, "vm/a");
  EXPECT_EQ((*listed)[1].key, "vm/b");
  EXPECT_EQ(d->store.list(Keyspace::Desired, "")->size(), 4u);
}

TEST(HostJournal, CompactionFoldsTheJournalIntoTheSnapshot) {
  test::TempDir tmp;
  {
    auto d = Durable::open(tmp.path());
    for (int i = 0; i < 20; ++i)
      ASSERT_TRUE(d->store.put(Keyspace::Desired, "k" + std::to_string(i % 5), i, kTestOrigin));
    auto pending = d->actions.begin("islands", "resize", {{"cpus", "2-3"}});
    ASSERT_TRUE(pending);
    uint64_t before = d->journal->stats().journalBytes;
    ASSERT_TRUE(d->journal->compact());
    JournalStats after = d->journal->stats();
    EXPECT_LT(after.journalBytes, before);
    EXPECT_EQ(after.journalRecords, 0u);
    EXPECT_EQ(after.snapshotSequence, 21u);
    ASSERT_TRUE(d->store.put(Keyspace::Desired, "after", "x", kTestOrigin));
  }
  auto d = Durable::open(tmp.path());
  ASSERT_TRUE(d);
  EXPECT_EQ(d->store.size(Keyspace::Desired), 6u);
  EXPECT_EQ((*d->store.get(Keyspace::Desired, "k4"))->value, 19);
  EXPECT_EQ(d->store.revision(), 22u);
  ASSERT_EQ(d->actions.pending().size(), 1u);  // in-flight actions live in the snapshot too
  EXPECT_EQ(d->actions.pending()[0].params["cpus"], "2-3");
  EXPECT_EQ(d->journal->stats().replayedRecords, 1u);
}

// A crash after the snapshot was renamed into place but before the journal
// was cleared leaves records the snapshot already holds; replay skips them.
TEST(HostJournal, CrashBetweenSnapshotAndClearReplaysNothingTwice) {
  test::TempDir tmp;
  std::string journalBeforeCompaction;
  {
    auto d = Durable::open(tmp.path());
    ASSERT_TRUE(d->store.put(Keyspace::Desired, "a", 1, kTestOrigin));
    ASSERT_TRUE(d->store.put(Keyspace::Desired, "b", 2, kTestOrigin));
    ASSERT_TRUE(d->store.remove(Keyspace::Desired, "a", kTestOrigin));
    journalBeforeCompaction = test::readTextFile(tmp.file("journal"));
    ASSERT_TRUE(d->journal->compact());
  }
  test::writeTextFile(tmp.file("journal"), journalBeforeCompaction);
  auto d = Durable::open(tmp.path());
  ASSERT_TRUE(d);
  EXPECT_EQ(d->journal->stats().replayedRecords, 0u);
  EXPECT_FALSE(*d->store.get(Keyspace::Desired, "a"));
  EXPECT_EQ((*d->store.get(Keyspace::Desired, "b"))->value, 2);
  ASSERT_TRUE(d->store.put(Keyspace::Desired, "c", 3, kTestOrigin));
  EXPECT_EQ(d->store.revision(), 4u);
}

TEST(HostJournal, TornTailIsDroppedAndReported) {
  test::TempDir tmp;
  {
    auto d = Durable::open(tmp.path());
    ASSERT_TRUE(d->store.put(Keyspace::Desired, "kept", 1, kTestOrigin));
  }
  std::string torn = encodeJournalRecord(2, R"({"type":"state.put","keyspace":"desired"})");
  test::writeTextFile(tmp.file("journal"),
                      test::readTextFile(tmp.file("journal")) + torn.substr(0, torn.size() - 3));
  auto d = Durable::open(tmp.path());
  ASSERT_TRUE(d);
  JournalStats stats = d->journal->stats();
  EXPECT_EQ(stats.droppedTailBytes, torn.size() - 3);
  EXPECT_NE(stats.droppedTailReason.find("torn"), std::string::npos);
  EXPECT_TRUE(*d->store.get(Keyspace::Desired, "kept"));
  ASSERT_TRUE(d->store.put(Keyspace::Desired, "next", 2, kTestOrigin));
  EXPECT_EQ(d->store.revision(), 2u);
}

TEST(HostJournal, RefusesToStartOnACorruptSnapshot) {
  test::TempDir tmp;
  {
    auto d = Durable::open(tmp.path());
    ASSERT_TRUE(d->store.put(Keyspace::Desired, "a", 1, kTestOrigin));
    ASSERT_TRUE(d->journal->compact());
  }
  std::string snapshot = test::readTextFile(tmp.file("snapshot"));
  snapshot[snapshot.size() - 3] ^= 0x01;
  test::writeTextFile(tmp.file("snapshot"), snapshot);
  std::string error;
  EXPECT_EQ(Durable::open(tmp.path(), &error), nullptr);
  EXPECT_NE(error.find("CRC32"), std::string::npos) << error;
}

TEST(HostJournal, RefusesRecordsOfUnknownType) {
  test::TempDir tmp;
  { ASSERT_TRUE(Durable::open(tmp.path())); }
  test::writeTextFile(tmp.file("journal"), test::readTextFile(tmp.file("journal")) +
                                               encodeJournalRecord(1, R"({"type":"future.x"})"));
  std::string error;
  EXPECT_EQ(Durable::open(tmp.path(), &error), nullptr);
  EXPECT_NE(error.find("no known type"), std::string::npos) << error;
}

TEST(HostJournal, StateFilesAreNotWorldReadable) {
  mode_t mask = ::umask(0);
  ::umask(mask);
  test::TempDir tmp;
  auto d = Durable::open(tmp.path() + "/state");
  ASSERT_TRUE(d->store.put(Keyspace::Desired, "a", 1, kTestOrigin));
  ASSERT_TRUE(d->journal->compact());
  struct stat st {};
  ASSERT_EQ(::stat((tmp.path() + "/state").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u & ~mask);
  for (const char* name : {"journal", "snapshot", "lock"}) {
    ASSERT_EQ(::stat((tmp.path() + "/state/" + name).c_str(), &st), 0) << name;
    EXPECT_EQ(st.st_mode & 07777, 0640u & ~mask) << name;
  }
}

TEST(HostJournal, OneDaemonPerStateDirectory) {
  test::TempDir tmp;
  auto first = Durable::open(tmp.path());
  ASSERT_TRUE(first);
  std::string error;
  EXPECT_EQ(Durable::open(tmp.path(), &error), nullptr);
  EXPECT_NE(error.find("another atolld"), std::string::npos) << error;
  first.reset();
  EXPECT_NE(Durable::open(tmp.path()), nullptr);
}

TEST(ActionLog, InFlightActionsSurviveUntilFinished) {
  test::TempDir tmp;
  uint64_t done = 0;
  uint64_t open = 0;
  {
    auto d = Durable::open(tmp.path());
    auto a = d->actions.begin("islands", "move", {{"pid", 7}});
    auto b = d->actions.begin("transfers", "send", {});
    ASSERT_TRUE(a && b);
    done = *a;
    open = *b;
    ASSERT_TRUE(d->actions.finish(done, ActionOutcome::Completed));
    EXPECT_FALSE(d->actions.finish(done, ActionOutcome::Completed));  // not in flight any more
  }
  auto d = Durable::open(tmp.path());
  auto pending = d->actions.pending();
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].id, open);
  EXPECT_EQ(pending[0].subsystem, "transfers");
  EXPECT_EQ(d->actions.finishedCount(), 1u);
  ASSERT_TRUE(d->actions.finish(open, ActionOutcome::RolledBack, "undone"));
  EXPECT_TRUE(d->actions.pending().empty());
}

// A failed action whose undo left part of the change in place is journaled
// under its own outcome, with what was left, never as rolled back.
TEST(ActionLog, AnIncompleteRollbackIsJournaledAsSuch) {
  test::TempDir tmp;
  auto d = Durable::open(tmp.path());
  auto id = d->actions.begin("islands", "apply", {});
  ASSERT_TRUE(id);
  ASSERT_TRUE(d->actions.finish(*id, ActionOutcome::RollbackIncomplete,
                                "write cpuset.cpus of db: Device or resource busy"));
  std::string journaled;
  for (const auto& entry : std::filesystem::directory_iterator(tmp.path())) {
    std::ifstream in(entry.path());
    journaled += std::string(std::istreambuf_iterator<char>(in), {});
  }
  EXPECT_NE(journaled.find(R"("outcome":"rollback_incomplete")"), std::string::npos) << journaled;
  EXPECT_EQ(journaled.find("rolled_back"), std::string::npos);
  EXPECT_NE(journaled.find("Device or resource busy"), std::string::npos);
}

}  // namespace
}  // namespace Atoll
