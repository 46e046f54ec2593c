#include "runtime/Journal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>

#include "runtime/StateFiles.h"

namespace Atoll {

namespace {

void putU32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void putU64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint64_t getLe(std::string_view bytes, size_t offset, int width) {
  uint64_t v = 0;
  for (int i = width - 1; i >= 0; --i)
    v = (v << 8) | static_cast<unsigned char>(bytes[offset + static_cast<size_t>(i)]);
  return v;
}

uint32_t recordCrc(uint64_t sequence, std::string_view payload) {
  std::string seq;
  putU64(seq, sequence);
  uLong crc = ::crc32(0L, Z_NULL, 0);
  crc = ::crc32(crc, reinterpret_cast<const Bytef*>(seq.data()), static_cast<uInt>(seq.size()));
  crc = ::crc32(crc, reinterpret_cast<const Bytef*>(payload.data()),
                static_cast<uInt>(payload.size()));
  return static_cast<uint32_t>(crc);
}

Result<void> syncDirectory(const Dir& dir) {
  if (::fsync(dir.fd()) != 0) return Error::fromErrno("fsync", dir.path(), errno);
  return ok();
}

}  // namespace

std::string encodeJournalRecord(uint64_t sequence, std::string_view payload) {
  std::string out;
  out.reserve(Journal::kRecordHeaderBytes + payload.size());
  putU32(out, static_cast<uint32_t>(payload.size()));
  putU32(out, recordCrc(sequence, payload));
  putU64(out, sequence);
  out.append(payload);
  return out;
}

Result<JournalScan> scanJournal(std::string_view bytes, const std::string& pathForErrors) {
  JournalScan scan;
  if (bytes.size() < Journal::kMagic.size() ||
      bytes.substr(0, Journal::kMagic.size()) != Journal::kMagic) {
    return Error::invalid("read journal", pathForErrors, "",
                          "the file does not start with the Atoll journal magic");
  }
  size_t offset = Journal::kMagic.size();
  uint64_t lastSequence = 0;
  while (offset < bytes.size()) {
    size_t left = bytes.size() - offset;
    if (left < Journal::kRecordHeaderBytes) {
      scan.dropReason = "torn record header at offset " + std::to_string(offset);
      break;
    }
    auto length = static_cast<uint32_t>(getLe(bytes, offset, 4));
    auto crc = static_cast<uint32_t>(getLe(bytes, offset + 4, 4));
    uint64_t sequence = getLe(bytes, offset + 8, 8);
    if (length > Journal::kMaxPayloadBytes) {
      scan.dropReason = "impossible record length " + std::to_string(length) + " at offset " +
                        std::to_string(offset);
      break;
    }
    if (left - Journal::kRecordHeaderBytes < length) {
      scan.dropReason = "torn record at offset " + std::to_string(offset) + " (" +
                        std::to_string(left - Journal::kRecordHeaderBytes) + " of " +
                        std::to_string(length) + " payload bytes)";
      break;
    }
    std::string_view payload = bytes.substr(offset + Journal::kRecordHeaderBytes, length);
    if (recordCrc(sequence, payload) != crc) {
      scan.dropReason = "CRC mismatch at offset " + std::to_string(offset);
      break;
    }
    if (sequence <= lastSequence) {
      scan.dropReason = "sequence " + std::to_string(sequence) + " after " +
                        std::to_string(lastSequence) + " at offset " + std::to_string(offset);
      break;
    }
    lastSequence = sequence;
    scan.records.push_back(JournalRecord{sequence, std::string(payload)});
    offset += Journal::kRecordHeaderBytes + length;
  }
  scan.validBytes = offset;
  scan.droppedBytes = bytes.size() - offset;
  return scan;
}

Result<Journal> Journal::open(const Dir& dir, const std::string& name, JournalScan& scan) {
  std::string path = dir.path() + "/" + name;
  auto fd = openStateFile(dir, name, O_RDWR | O_CREAT | O_APPEND);
  if (!fd) return fd.error();
  auto bytes = preadAll(fd->get(), path);
  if (!bytes) return bytes.error();

  // A journal whose creation was cut short is shorter than the magic.
  if (bytes->size() < kMagic.size() && kMagic.substr(0, bytes->size()) == *bytes) {
    if (::ftruncate(fd->get(), 0) != 0) return Error::fromErrno("ftruncate", path, errno);
    if (auto w = writeAll(fd->get(), kMagic, path); !w) return w.error();
    if (::fdatasync(fd->get()) != 0) return Error::fromErrno("fdatasync", path, errno);
    if (auto s = syncDirectory(dir); !s) return s.error();
    *bytes = std::string(kMagic);
  }
  auto decoded = scanJournal(*bytes, path);
  if (!decoded) return decoded.error();
  scan = std::move(*decoded);
  if (scan.droppedBytes > 0) {
    if (::ftruncate(fd->get(), static_cast<off_t>(scan.validBytes)) != 0)
      return Error::fromErrno("ftruncate", path, errno, std::to_string(scan.validBytes));
    if (::fdatasync(fd->get()) != 0) return Error::fromErrno("fdatasync", path, errno);
  }
  return Journal(std::move(*fd), path, scan.validBytes, scan.records.size());
}

Result<void> Journal::append(uint64_t sequence, std::string_view payload) {
  if (payload.size() > kMaxPayloadBytes)
    return Error::invalid("append", path_, std::to_string(payload.size()) + " bytes",
                          "record larger than the journal's limit");
  // The bytes of an earlier failed append go first: open() stops at them, so
  // a record written after them would be acknowledged and then lost.
  if (damagedTail_) {
    if (::ftruncate(fd_.get(), static_cast<off_t>(size_)) != 0) {
      Error error = Error::fromErrno("ftruncate", path_, errno, std::to_string(size_));
      error.detail = "a failed append's bytes are still at the end; nothing is appended after them";
      return error;
    }
    damagedTail_ = false;
  }
  std::string record = encodeJournalRecord(sequence, payload);
  auto written = writeAll(fd_.get(), record, path_);
  if (written && ::fdatasync(fd_.get()) != 0) written = Error::fromErrno("fdatasync", path_, errno);
  if (!written) {
    // Cut back whatever part reached the file; the caller reports the error
    // and acknowledges nothing.
    if (::ftruncate(fd_.get(), static_cast<off_t>(size_)) != 0) {
      damagedTail_ = true;
      Error error = written.error();
      error.detail +=
          "; cutting the partial record back also failed: " + std::string(std::strerror(errno));
      return error;
    }
    return written.error();
  }
  size_ += record.size();
  ++records_;
  return ok();
}

Result<void> Journal::clear() {
  if (::ftruncate(fd_.get(), static_cast<off_t>(kMagic.size())) != 0)
    return Error::fromErrno("ftruncate", path_, errno);
  // The file is this short now even if the sync fails: later appends and
  // cut-backs go by size_.
  size_ = kMagic.size();
  records_ = 0;
  damagedTail_ = false;
  if (::fdatasync(fd_.get()) != 0) return Error::fromErrno("fdatasync", path_, errno);
  return ok();
}

}  // namespace Atoll
