#pragma once
// Opening (and creating) the daemon's files in its state directory: journal,
// snapshot, lock. Created mode 0640, readable by the admin group, never by
// others, whatever the caller's umask allows.
#include <fcntl.h>  // the flags callers pass
#include <sys/types.h>

#include <string>

#include "util/Fs.h"
#include "util/Result.h"
#include "util/UniqueFd.h"

namespace Atoll {

inline constexpr mode_t kStateFileMode = 0640;

inline Result<UniqueFd> openStateFile(const Dir& dir, const std::string& name, int flags) {
  return dir.openFile(name, flags, kStateFileMode);
}

}  // namespace Atoll
