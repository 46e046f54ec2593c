#pragma once
// For the in-VM tests that run atolld (full cgroup v2 with cpuset, four
// CPUs, two NUMA nodes): the check that the guest is such a host, a scratch
// directory for the daemon's configuration, socket, state and logs, the
// daemon as a child process, and the removal of the islands it made.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <initializer_list>
#include <string>

#include "numa/CgroupV2.h"
#include "numa/IslandEnforcer.h"
#include "numa/Topology.h"
#include "util/Fs.h"

namespace Atoll::test {

class AtolldInVm {
 public:
  static constexpr const char* kMount = "/sys/fs/cgroup";
  static constexpr const char* kManagedRoot = "atoll.slice";  // atolld's own

  AtolldInVm() = default;
  AtolldInVm(const AtolldInVm&) = delete;
  AtolldInVm& operator=(const AtolldInVm&) = delete;
  ~AtolldInVm() {
    stop(SIGTERM);
    if (!dir_.empty()) (void)std::system(("rm -rf '" + dir_ + "'").c_str());
  }

  // Checks the guest and makes the scratch directory (/tmp/PREFIX-XXXXXX).
  // Empty when ready; otherwise why the test must skip or fail.
  std::string prepare(const std::string& prefix, unsigned minCpus) {
    const char* cli = std::getenv("ATOLL_CLI");
    const char* bin = std::getenv("ATOLL_VM_BIN");
    if (cli == nullptr || bin == nullptr)
      return "ATOLL_CLI / ATOLL_VM_BIN are not set (the test VM sets them)";
    cli_ = cli;
    atolld_ = std::string(bin) + "/atolld";
    if (::access(atolld_.c_str(), X_OK) != 0) return "no atolld at " + atolld_;
    auto root = numa::CgroupV2::open(kMount);
    if (!root) return std::string("no cgroup v2 at ") + kMount;
    auto controllers = root->controllers();
    if (!controllers ||
        std::find(controllers->begin(), controllers->end(), "cpuset") == controllers->end())
      return std::string("no cpuset controller in ") + kMount;
    auto host = numa::Topology::fromHost();
    if (!host) return host.error().message();
    if (host->cpus().size() < minCpus || host->nodes().size() < 2)
      return "needs " + std::to_string(minCpus) + " CPUs and two NUMA nodes (" + host->summary() +
             ")";
    std::string dir = "/tmp/" + prefix + "-XXXXXX";
    if (::mkdtemp(dir.data()) == nullptr) return "cannot create " + dir;
    dir_ = dir;
    socket_ = dir_ + "/atolld.sock";
    return {};
  }

  // Starts atolld with DIR/atolld.toml, its output in DIR/atolld.log.
  bool start() {
    daemon_ = ::fork();
    if (daemon_ < 0) return false;
    if (daemon_ == 0) {
      int log = ::open((dir_ + "/atolld.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (log >= 0) {
        ::dup2(log, 1);
        ::dup2(log, 2);
      }
      ::execl(atolld_.c_str(), atolld_.c_str(), "--config", (dir_ + "/atolld.toml").c_str(),
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    return true;
  }

  void stop(int signal) {
    if (daemon_ <= 0) return;
    ::kill(daemon_, signal);
    ::waitpid(daemon_, nullptr, 0);
    daemon_ = 0;
    ::unlink(socket_.c_str());
  }

  // Removes these islands, and the managed root once no island is left.
  static void removeIslands(std::initializer_list<const char*> islands) {
    auto host = numa::Topology::fromHost();
    if (!host) return;
    auto enforcer = numa::IslandEnforcer::open(*host, kMount, kManagedRoot);
    if (!enforcer) return;
    for (const char* island : islands) (void)enforcer->remove(island);
    if (auto left = enforcer->islands(); left && left->empty())
      if (auto mount = Dir::open(kMount)) (void)mount->removeChild(kManagedRoot);
  }

  // The CLI's and the daemon's logs, for failure messages.
  std::string log() const {
    return "cli:\n" + readFile(dir_ + "/cli.log").value_or("") + "\natolld:\n" +
           readFile(dir_ + "/atolld.log").value_or("");
  }

  const std::string& cli() const { return cli_; }
  const std::string& dir() const { return dir_; }
  const std::string& socket() const { return socket_; }
  pid_t pid() const { return daemon_; }

 private:
  std::string cli_, atolld_, dir_, socket_;
  pid_t daemon_ = 0;
};

}  // namespace Atoll::test
