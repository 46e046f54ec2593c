#include "runtime/SnapshotFile.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <charconv>
#include <cinttypes>

#include "runtime/StateFiles.h"
#include "util/UniqueFd.h"

namespace Atoll {

namespace {

constexpr std::string_view kHeaderPrefix = "ATOLL-SNAPSHOT 1 ";

uint32_t checksum(std::string_view body) {
  uLong crc = ::crc32(0L, Z_NULL, 0);
  crc = ::crc32(crc, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size()));
  return static_cast<uint32_t>(crc);
}

bool readField(std::string_view& header, std::string_view name, int base, uint64_t& out) {
  if (header.substr(0, name.size()) != name) return false;
  header.remove_prefix(name.size());
  auto [end, ec] = std::from_chars(header.data(), header.data() + header.size(), out, base);
  if (ec != std::errc() || end == header.data()) return false;
  header.remove_prefix(static_cast<size_t>(end - header.data()));
  if (!header.empty() && header.front() == ' ') header.remove_prefix(1);
  return true;
}

}  // namespace

std::string encodeSnapshot(const Snapshot& snapshot) {
  char crc[16];
  std::snprintf(crc, sizeof crc, "%08" PRIx32, checksum(snapshot.body));
  std::string out(kHeaderPrefix);
  out += "sequence=" + std::to_string(snapshot.sequence) +
         " bytes=" + std::to_string(snapshot.body.size()) + " crc32=" + crc + "\n";
  out += snapshot.body;
  return out;
}

Result<Snapshot> decodeSnapshot(std::string_view bytes, const std::string& pathForErrors) {
  auto corrupt = [&](std::string detail) {
    return Error::invalid("read snapshot", pathForErrors, "", std::move(detail));
  };
  size_t newline = bytes.find('\n');
  if (bytes.substr(0, kHeaderPrefix.size()) != kHeaderPrefix || newline == std::string_view::npos)
    return corrupt("missing the ATOLL-SNAPSHOT header");
  std::string_view header = bytes.substr(kHeaderPrefix.size(), newline - kHeaderPrefix.size());
  uint64_t sequence = 0;
  uint64_t length = 0;
  uint64_t crc = 0;
  if (!readField(header, "sequence=", 10, sequence) || !readField(header, "bytes=", 10, length) ||
      !readField(header, "crc32=", 16, crc) || !header.empty())
    return corrupt("malformed header '" +
                   std::string(bytes.substr(0, std::min<size_t>(newline, 120))) + "'");
  std::string_view body = bytes.substr(newline + 1);
  if (body.size() != length)
    return corrupt("body is " + std::to_string(body.size()) + " bytes, header says " +
                   std::to_string(length));
  if (checksum(body) != crc) return corrupt("CRC32 mismatch");
  return Snapshot{sequence, std::string(body)};
}

Result<void> writeSnapshotFile(const Dir& dir, const std::string& name, const Snapshot& snapshot) {
  std::string temporary = name + ".tmp";
  std::string tempPath = dir.path() + "/" + temporary;
  auto fd = openStateFile(dir, temporary, O_WRONLY | O_CREAT | O_TRUNC);
  if (!fd) return fd.error();
  std::string bytes = encodeSnapshot(snapshot);
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd->get(), bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::fromErrno("write", tempPath, errno);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd->get()) != 0) return Error::fromErrno("fsync", tempPath, errno);
  fd->reset();
  if (::renameat(dir.fd(), temporary.c_str(), dir.fd(), name.c_str()) != 0)
    return Error::fromErrno("rename", tempPath, errno, dir.path() + "/" + name);
  if (::fsync(dir.fd()) != 0) return Error::fromErrno("fsync", dir.path(), errno);
  return ok();
}

Result<std::optional<Snapshot>> readSnapshotFile(const Dir& dir, const std::string& name) {
  auto fd = dir.openFile(name, O_RDONLY);
  if (!fd) {
    if (fd.error().errnum == ENOENT) return std::optional<Snapshot>{};
    return fd.error();
  }
  std::string path = dir.path() + "/" + name;
  auto bytes = preadAll(fd->get(), path);
  if (!bytes) return bytes.error();
  auto decoded = decodeSnapshot(*bytes, path);
  if (!decoded) return decoded.error();
  return std::optional<Snapshot>(std::move(*decoded));
}

}  // namespace Atoll
