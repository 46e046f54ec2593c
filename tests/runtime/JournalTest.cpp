#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

#include "runtime/Journal.h"
#include "runtime/SnapshotFile.h"
#include "tests/runtime/TestSupport.h"

// Fault injection: while armed, the next fdatasync(2) and ftruncate(2) calls
// of this process fail with EIO instead of reaching the kernel. These
// definitions take the place of libc's for the code linked into this test.
namespace {
std::atomic<int> failFdatasyncs{0};
std::atomic<int> failFtruncates{0};
bool takeFault(std::atomic<int>& faults) {
  int left = faults.load();
  while (left > 0 && !faults.compare_exchange_weak(left, left - 1)) {
  }
  return left > 0;
}
}  // namespace

extern "C" int fdatasync(int fd) noexcept {
  if (takeFault(failFdatasyncs)) {
    errno = EIO;
    return -1;
  }
  return static_cast<int>(::syscall(SYS_fdatasync, fd));
}

extern "C" int ftruncate(int fd, off_t length) noexcept {
  if (takeFault(failFtruncates)) {
    errno = EIO;
    return -1;
  }
  return static_cast<int>(::syscall(SYS_ftruncate, fd, length));
}

namespace Atoll {
namespace {

std::string journalBytes(const std::vector<std::pair<uint64_t, std::string>>& records) {
  std::string out(Journal::kMagic);
  for (const auto& [seq, payload] : records) out += encodeJournalRecord(seq, payload);
  return out;
}

TEST(JournalScan, RoundTrips) {
  std::string bytes = journalBytes({{1, "a"}, {2, ""}, {5, std::string(1000, 'x')}});
  auto scan = scanJournal(bytes, "j");
  ASSERT_TRUE(scan) << scan.error().message();
  ASSERT_EQ(scan->records.size(), 3u);
  EXPECT_EQ(scan->records[2].sequence, 5u);
  EXPECT_EQ(scan->records[2].payload.size(), 1000u);
  EXPECT_EQ(scan->droppedBytes, 0u);
  EXPECT_EQ(scan->validBytes, bytes.size());
}

// A crash can cut the last record anywhere: every cut keeps the whole
// records before it and drops exactly the torn bytes.
TEST(JournalScan, DropsATornTailCutAtAnyByte) {
  std::string whole = journalBytes({{1, "first"}, {2, "second"}});
  std::string last = encodeJournalRecord(3, "{\"type\":\"state.put\"}");
  for (size_t cut = 1; cut < last.size(); ++cut) {
    std::string bytes = whole + last.substr(0, cut);
    auto scan = scanJournal(bytes, "j");
    ASSERT_TRUE(scan);
    ASSERT_EQ(scan->records.size(), 2u) << "cut " << cut;
    EXPECT_EQ(scan->validBytes, whole.size());
    EXPECT_EQ(scan->droppedBytes, cut);
    EXPECT_FALSE(scan->dropReason.empty());
  }
}

TEST(JournalScan, DetectsCorruption) {
  std::string whole = journalBytes({{1, "first"}, {2, "second"}});
  std::string flipped = whole;
  flipped.back() ^= 0x01;
  auto scan = scanJournal(flipped, "j");
  ASSERT_TRUE(scan);
  EXPECT_EQ(scan->records.size(), 1u);
  EXPECT_NE(scan->dropReason.find("CRC"), std::string::npos);

  std::string huge = whole + std::string("\xff\xff\xff\x7f", 4) + std::string(12, '\0');
  scan = scanJournal(huge, "j");
  ASSERT_TRUE(scan);
  EXPECT_EQ(scan->records.size(), 2u);
  EXPECT_NE(scan->dropReason.find("impossible record length"), std::string::npos);

  std::string backwards = journalBytes({{2, "a"}, {2, "b"}});
  scan = scanJournal(backwards, "j");
  ASSERT_TRUE(scan);
  EXPECT_EQ(scan->records.size(), 1u);
  EXPECT_NE(scan->dropReason.find("sequence"), std::string::npos);
}

TEST(JournalScan, RefusesFilesWithoutTheMagic) {
  auto scan = scanJournal("not a journal at all", "/x/journal");
  ASSERT_FALSE(scan);
  EXPECT_NE(scan.error().message().find("/x/journal"), std::string::npos);
}

TEST(JournalFile, AppendsDurablyAndTruncatesATornTailOnOpen) {
  test::TempDir tmp;
  auto dir = Dir::open(tmp.path());
  ASSERT_TRUE(dir);
  {
    JournalScan scan;
    auto journal = Journal::open(*dir, "journal", scan);
    ASSERT_TRUE(journal) << journal.error().message();
    EXPECT_EQ(scan.records.size(), 0u);
    ASSERT_TRUE(journal->append(1, "one"));
    ASSERT_TRUE(journal->append(2, "two"));
    EXPECT_EQ(journal->recordCount(), 2u);
  }
  // A crash in the middle of the third record's write.
  std::string torn = encodeJournalRecord(3, "three").substr(0, 9);
  {
    int fd = ::open(tmp.file("journal").c_str(), O_WRONLY | O_APPEND);
    ASSERT_EQ(::write(fd, torn.data(), torn.size()), static_cast<ssize_t>(torn.size()));
    ::close(fd);
  }
  JournalScan scan;
  auto journal = Journal::open(*dir, "journal", scan);
  ASSERT_TRUE(journal);
  ASSERT_EQ(scan.records.size(), 2u);
  EXPECT_EQ(scan.records[1].payload, "two");
  EXPECT_EQ(scan.droppedBytes, torn.size());
  // The file was cut back, and appending continues cleanly after it.
  ASSERT_TRUE(journal->append(3, "three"));
  auto reread = scanJournal(test::readTextFile(tmp.file("journal")), "journal");
  ASSERT_TRUE(reread);
  EXPECT_EQ(reread->records.size(), 3u);
  EXPECT_EQ(reread->droppedBytes, 0u);
}

// A failed append whose record could not be cut back leaves its bytes at the
// end of the file. An append after them must not be acknowledged while they
// are there: the next open() stops at them (here: at a repeated sequence
// number) and drops every record after them.
TEST(JournalFile, NothingIsAcknowledgedAfterARecordThatCouldNotBeCutBack) {
  test::TempDir tmp;
  auto dir = Dir::open(tmp.path());
  ASSERT_TRUE(dir);
  std::vector<std::string> acknowledged;
  {
    JournalScan scan;
    auto journal = Journal::open(*dir, "journal", scan);
    ASSERT_TRUE(journal) << journal.error().message();
    ASSERT_TRUE(journal->append(1, "one"));
    acknowledged.push_back("one");
    failFdatasyncs = 1;
    failFtruncates = 1;
    auto failed = journal->append(2, "two, reported as failed");
    EXPECT_FALSE(failed);
    failFdatasyncs = 0;
    failFtruncates = 1;  // the bytes are still in the way
    EXPECT_FALSE(journal->append(2, "two, refused"));
    failFtruncates = 0;
    if (journal->append(2, "two")) acknowledged.push_back("two");
    if (journal->append(3, "three")) acknowledged.push_back("three");
  }
  JournalScan scan;
  auto journal = Journal::open(*dir, "journal", scan);
  ASSERT_TRUE(journal) << journal.error().message();
  std::vector<std::string> recovered;
  for (const auto& record : scan.records) recovered.push_back(record.payload);
  EXPECT_EQ(recovered, acknowledged) << scan.dropReason;
  EXPECT_EQ(scan.droppedBytes, 0u) << scan.dropReason;
}

TEST(JournalFile, RefusesAForeignFile) {
  test::TempDir tmp;
  test::writeTextFile(tmp.file("journal"), "precious data that is not ours");
  auto dir = Dir::open(tmp.path());
  JournalScan scan;
  auto journal = Journal::open(*dir, "journal", scan);
  EXPECT_FALSE(journal);
  EXPECT_EQ(test::readTextFile(tmp.file("journal")), "precious data that is not ours");
}

TEST(JournalFile, ClearKeepsOnlyTheMagic) {
  test::TempDir tmp;
  auto dir = Dir::open(tmp.path());
  JournalScan scan;
  auto journal = Journal::open(*dir, "journal", scan);
  ASSERT_TRUE(journal->append(1, "x"));
  ASSERT_TRUE(journal->clear());
  EXPECT_EQ(journal->sizeBytes(), Journal::kMagic.size());
  EXPECT_EQ(test::readTextFile(tmp.file("journal")), std::string(Journal::kMagic));
}

TEST(Snapshot, RoundTripsAndDetectsCorruption) {
  Snapshot snapshot{42, R"({"sections":{}})"};
  std::string bytes = encodeSnapshot(snapshot);
  auto decoded = decodeSnapshot(bytes, "s");
  ASSERT_TRUE(decoded) << decoded.error().message();
  EXPECT_EQ(decoded->sequence, 42u);
  EXPECT_EQ(decoded->body, snapshot.body);

  std::string flipped = bytes;
  flipped[flipped.size() - 2] ^= 0x20;
  EXPECT_NE(decodeSnapshot(flipped, "s").error().detail.find("CRC32"), std::string::npos);
  EXPECT_FALSE(decodeSnapshot(bytes.substr(0, bytes.size() - 1), "s"));
  EXPECT_FALSE(decodeSnapshot("garbage", "s"));
  EXPECT_FALSE(decodeSnapshot("ATOLL-SNAPSHOT 1 sequence=x bytes=0 crc32=0\n", "s"));
}

TEST(Snapshot, FileIsReplacedAtomically) {
  test::TempDir tmp;
  auto dir = Dir::open(tmp.path());
  auto absent = readSnapshotFile(*dir, "snapshot");
  ASSERT_TRUE(absent);
  EXPECT_FALSE(*absent);
  ASSERT_TRUE(writeSnapshotFile(*dir, "snapshot", Snapshot{1, "{}"}));
  ASSERT_TRUE(writeSnapshotFile(*dir, "snapshot", Snapshot{2, "{\"a\":1}"}));
  auto read = readSnapshotFile(*dir, "snapshot");
  ASSERT_TRUE(read && *read);
  EXPECT_EQ((*read)->sequence, 2u);
  EXPECT_FALSE(dir->exists("snapshot.tmp"));
}

}  // namespace
}  // namespace Atoll
