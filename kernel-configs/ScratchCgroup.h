#pragma once
// A temporary child cgroup that the capability probes create under the
// cgroup2 mount and always remove again. Probes never touch cgroups they did
// not create; anything they need to try (attaching a program, checking a
// controller file) happens in one of these.
#include <string>

#include "util/Fs.h"
#include "util/Result.h"

namespace Atoll::capability {

class ScratchCgroup {
 public:
  // Creates "<parent>/atoll-check-<pid>-<n>".
  static Result<ScratchCgroup> create(const std::string& parentPath);

  ScratchCgroup(ScratchCgroup&& other) noexcept;
  ScratchCgroup& operator=(ScratchCgroup&&) = delete;
  ScratchCgroup(const ScratchCgroup&) = delete;
  ScratchCgroup& operator=(const ScratchCgroup&) = delete;
  // Removes the directory; a failure is reported by remove() when called
  // explicitly, and retried here otherwise.
  ~ScratchCgroup();

  const Dir& dir() const { return dir_; }
  const std::string& path() const { return dir_.path(); }
  const std::string& name() const { return name_; }
  Result<void> remove();

 private:
  ScratchCgroup(Dir parent, Dir dir, std::string name)
      : parent_(std::move(parent)), dir_(std::move(dir)), name_(std::move(name)) {}

  Dir parent_;
  Dir dir_;
  std::string name_;
  bool removed_ = false;
};

// Prefix of every scratch cgroup name, so tests can verify none is left.
inline constexpr std::string_view kScratchCgroupPrefix = "atoll-check-";

}  // namespace Atoll::capability
