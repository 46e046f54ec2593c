#pragma once
// A child cgroup of the cgroup2 mount for kernel tests, and worker processes
// forked into it. Removed (workers killed first) on destruction.
#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "util/Fs.h"

namespace Atoll::telemetry::testing {

// Empty string when the running user cannot create cgroups or there is no
// cgroup2 mount; the reason is in skipReason.
struct Cgroup2Access {
  std::string mount;
  std::string skipReason;
};
Cgroup2Access cgroup2ForTests();

class TestCgroup {
 public:
  // Creates <mount>/<name> (name made unique with the pid).
  static Result<TestCgroup> create(const std::string& mount, const std::string& name);
  TestCgroup(TestCgroup&& other) noexcept;
  TestCgroup& operator=(TestCgroup&&) = delete;
  ~TestCgroup();

  const std::string& relativePath() const { return name_; }
  std::string path() const { return mount_ + "/" + name_; }
  uint64_t id() const { return id_; }
  const Dir& dir() const { return *dir_; }

  // Forks a process that moves itself into the cgroup, passes one scheduler
  // switch (so its earlier time stays with the old cgroup), reports ready,
  // waits for start(), runs body and exits with its return value.
  pid_t fork(const std::function<int()>& body);
  // Releases every forked worker at once.
  void start();
  // Waits until every worker has exited, leaving them as zombies so their
  // /proc entries can still be read; reap() collects them.
  void waitExitedNoReap();
  void reap();
  const std::vector<pid_t>& workers() const { return workers_; }

 private:
  TestCgroup(std::string mount, std::string name, Dir dir, uint64_t id);
  std::string mount_;
  std::string name_;
  std::optional<Dir> dir_;
  uint64_t id_ = 0;
  std::vector<pid_t> workers_;
  int goPipe_[2] = {-1, -1};
  bool owned_ = true;
};

// Seconds of CPU work on the calling thread, measured on its own clock.
void spinFor(double seconds);

}  // namespace Atoll::telemetry::testing
