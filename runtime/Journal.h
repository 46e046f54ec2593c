#pragma once
// The append-only journal file. Each record is
//   u32 payload length | u32 CRC32 of (sequence, payload) | u64 sequence | payload
// (little-endian) after an 8-byte file magic. A record is written with one
// write(2) and made durable with fdatasync(2) before append() returns, so an
// acknowledged change survives SIGKILL or power loss. A crash mid-write leaves
// a torn tail: open() detects it (short header, impossible length, CRC
// mismatch, non-increasing sequence), drops it and truncates the file back to
// the last whole record.
//
// Decoding is separate from I/O (scanJournal) so torn tails are unit-tested on
// byte strings as well as on real files.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/Fs.h"
#include "util/Result.h"
#include "util/UniqueFd.h"

namespace Atoll {

struct JournalRecord {
  uint64_t sequence = 0;
  std::string payload;
};

struct JournalScan {
  std::vector<JournalRecord> records;
  uint64_t validBytes = 0;    // magic plus every whole record
  uint64_t droppedBytes = 0;  // torn or corrupt tail after validBytes
  std::string dropReason;     // why the tail was dropped, empty when none
};

class Journal {
 public:
  static constexpr std::string_view kMagic{"ATJRNL\0\1", 8};
  static constexpr size_t kRecordHeaderBytes = 16;
  // Larger lengths can only come from a torn or corrupt header.
  static constexpr uint32_t kMaxPayloadBytes = 16u * 1024 * 1024;

  // Opens or creates `name` in `dir`, scans it, truncates a torn tail (and
  // reports it in `scan`). A file that does not start with the magic is
  // refused rather than overwritten.
  static Result<Journal> open(const Dir& dir, const std::string& name, JournalScan& scan);

  // Appends one record and fdatasyncs. On failure the file is cut back to its
  // previous length so no partial record stays behind; while that cut fails,
  // every later append is refused.
  Result<void> append(uint64_t sequence, std::string_view payload);
  // Drops every record (after a snapshot holds them), durably.
  Result<void> clear();

  uint64_t sizeBytes() const { return size_; }
  uint64_t recordCount() const { return records_; }
  const std::string& path() const { return path_; }

 private:
  Journal(UniqueFd fd, std::string path, uint64_t size, uint64_t records)
      : fd_(std::move(fd)), path_(std::move(path)), size_(size), records_(records) {}

  UniqueFd fd_;
  std::string path_;
  uint64_t size_ = 0;
  uint64_t records_ = 0;
  // A failed append left bytes after size_ that could not be cut back.
  bool damagedTail_ = false;
};

// One encoded record, exactly as append() writes it.
std::string encodeJournalRecord(uint64_t sequence, std::string_view payload);
// Decodes a whole journal file's bytes (starting with the magic). Bytes that
// do not start with the magic give an error.
Result<JournalScan> scanJournal(std::string_view bytes, const std::string& pathForErrors);

}  // namespace Atoll
