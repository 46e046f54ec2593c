#include "TestCgroup.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <ctime>
#include <string>

#include "bpf/collector/CgroupDiscovery.h"
#include "bpf/collector/Collector.h"

namespace Atoll::telemetry::testing {

Cgroup2Access cgroup2ForTests() {
  Cgroup2Access access;
  if (::geteuid() != 0) {
    access.skipReason = "needs root to create cgroups and load BPF programs";
    return access;
  }
  std::string mount = defaultCgroup2Mount();
  if (::access((mount + "/cgroup.procs").c_str(), W_OK) != 0) {
    access.skipReason = "no writable cgroup2 mount at " + mount;
    return access;
  }
  access.mount = mount;
  return access;
}

TestCgroup::TestCgroup(std::string mount, std::string name, Dir dir, uint64_t id)
    : mount_(std::move(mount)), name_(std::move(name)), dir_(std::move(dir)), id_(id) {
  if (::pipe(goPipe_) != 0) goPipe_[0] = goPipe_[1] = -1;
}

TestCgroup::TestCgroup(TestCgroup&& other) noexcept
    : mount_(std::move(other.mount_)),
      name_(std::move(other.name_)),
      dir_(std::move(other.dir_)),
      id_(other.id_),
      workers_(std::move(other.workers_)) {
  goPipe_[0] = std::exchange(other.goPipe_[0], -1);
  goPipe_[1] = std::exchange(other.goPipe_[1], -1);
  other.owned_ = false;
}

Result<TestCgroup> TestCgroup::create(const std::string& mount, const std::string& name) {
  auto root = Dir::open(mount);
  if (!root) return root.error();
  std::string unique = name + "-" + std::to_string(::getpid());
  if (auto made = root->makeChild(unique); !made) return made.error();
  auto dir = root->openChild(unique);
  if (!dir) return dir.error();
  auto id = cgroupIdOf(*dir);
  if (!id) return id.error();
  return TestCgroup(mount, unique, std::move(*dir), *id);
}

pid_t TestCgroup::fork(const std::function<int()>& body) {
  int ready[2];
  if (::pipe(ready) != 0) return -1;
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(ready[0]);
    ::close(goPipe_[1]);
    if (!dir_->writeFile("cgroup.procs", "0")) ::_exit(120);
    ::usleep(2000);
    char byte = 1;
    if (::write(ready[1], &byte, 1) != 1) ::_exit(121);
    if (::read(goPipe_[0], &byte, 1) < 0) ::_exit(122);
    ::_exit(body());
  }
  ::close(ready[1]);
  char byte = 0;
  ssize_t n = ::read(ready[0], &byte, 1);
  ::close(ready[0]);
  if (pid > 0) workers_.push_back(pid);
  return n == 1 ? pid : -1;
}

void TestCgroup::start() {
  // One byte per worker rather than end-of-file: workers of another
  // TestCgroup forked meanwhile hold a copy of this pipe's write end.
  if (goPipe_[1] >= 0) {
    std::string go(workers_.size(), 'g');
    if (!go.empty() && ::write(goPipe_[1], go.data(), go.size()) < 0) {
      // Closing below still releases them once no other copy is open.
    }
    ::close(goPipe_[1]);
  }
  goPipe_[1] = -1;
}

void TestCgroup::waitExitedNoReap() {
  for (pid_t pid : workers_) {
    siginfo_t info{};
    while (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT) != 0 &&
           errno == EINTR) {
    }
  }
}

void TestCgroup::reap() {
  for (pid_t pid : workers_) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  workers_.clear();
}

TestCgroup::~TestCgroup() {
  if (!owned_) return;
  for (pid_t pid : workers_) ::kill(pid, SIGKILL);
  reap();
  if (goPipe_[0] >= 0) ::close(goPipe_[0]);
  if (goPipe_[1] >= 0) ::close(goPipe_[1]);
  dir_.reset();
  if (auto root = Dir::open(mount_)) {
    // A just-killed process may take a moment to leave the cgroup.
    for (int attempt = 0; attempt < 100; ++attempt) {
      if (root->removeChild(name_) || !root->exists(name_)) break;
      ::usleep(10000);
    }
  }
}

void spinFor(double seconds) {
  timespec start{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &start);
  volatile uint64_t sink = 0;
  for (;;) {
    for (int i = 0; i < 10000; ++i) sink = sink + static_cast<uint64_t>(i);
    timespec now{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    double elapsed = static_cast<double>(now.tv_sec - start.tv_sec) +
                     static_cast<double>(now.tv_nsec - start.tv_nsec) / 1e9;
    if (elapsed >= seconds) return;
  }
}

}  // namespace Atoll::telemetry::testing
