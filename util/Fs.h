#pragma once
// Filesystem facade for kernel interfaces (cgroupfs, procfs, sysfs). All access
// is relative to an open directory descriptor so that a cgroup renamed or
// replaced under us is never confused with its successor, and so that tests can
// point the same code at a fixture tree instead of the real kernel.
#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "util/Result.h"
#include "util/UniqueFd.h"

namespace Atoll {

class Dir {
 public:
  // Opens an existing directory.
  static Result<Dir> open(const std::string& path);

  const std::string& path() const { return path_; }
  int fd() const { return fd_.get(); }

  // Opens a child directory (relative name, may contain '/').
  Result<Dir> openChild(std::string_view name) const;
  // Creates a child directory (mode 0755); EEXIST is an error unless allowExisting.
  Result<void> makeChild(std::string_view name, bool allowExisting = false) const;
  // Removes an empty child directory (cgroups are removed this way).
  Result<void> removeChild(std::string_view name) const;
  bool exists(std::string_view name) const;

  // Reads a whole small file (control files, /proc entries).
  Result<std::string> readFile(std::string_view name) const;
  // Writes the value with a single write(2), as cgroupfs requires.
  Result<void> writeFile(std::string_view name, std::string_view value) const;
  // Lists entries (without "." and "..").
  Result<std::vector<std::string>> list() const;
  // Opens a file relative to this directory (kept descriptors, or new files
  // with O_CREAT, which are created with `mode` before the umask).
  Result<UniqueFd> openFile(std::string_view name, int flags, mode_t mode = 0600) const;

 private:
  Dir(UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  std::string childPath(std::string_view name) const;

  UniqueFd fd_;
  std::string path_;
};

// Reads a whole file by absolute path.
Result<std::string> readFile(const std::string& path);
// Writes every byte, retrying short writes and EINTR.
Result<void> writeAll(int fd, std::string_view bytes, const std::string& pathForErrors);
// Re-reads a kept descriptor from offset 0.
Result<std::string> preadAll(int fd, const std::string& pathForErrors);

// Trims ASCII whitespace from both ends.
std::string_view trim(std::string_view text);

}  // namespace Atoll
