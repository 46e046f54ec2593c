#pragma once
// The snapshot file: the journaled state as of one sequence number, so the
// journal can be cleared (compaction). Format: one header line
//   "ATOLL-SNAPSHOT 1 sequence=N bytes=M crc32=XXXXXXXX\n"
// followed by M bytes of JSON. It is replaced atomically (write a temporary
// file, fsync, rename, fsync the directory): a crash leaves the old or the new
// snapshot, never a mix. A snapshot that fails its checksum stops the daemon
// with the reason instead of silently starting from empty state.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "util/Fs.h"
#include "util/Result.h"

namespace Atoll {

struct Snapshot {
  uint64_t sequence = 0;  // every record up to and including this one is inside
  std::string body;       // JSON text
};

std::string encodeSnapshot(const Snapshot& snapshot);
Result<Snapshot> decodeSnapshot(std::string_view bytes, const std::string& pathForErrors);

Result<void> writeSnapshotFile(const Dir& dir, const std::string& name, const Snapshot& snapshot);
// nullopt when the file does not exist.
Result<std::optional<Snapshot>> readSnapshotFile(const Dir& dir, const std::string& name);

}  // namespace Atoll
