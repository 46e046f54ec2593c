#pragma once
// For the in-VM tests of atolld's islands (full cgroup v2, four CPUs, two
// nodes): a fixture that writes atolld's configuration, starts and stops the
// daemon, and runs the atoll CLI against it.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <thread>

#include "numa/CgroupV2.h"
#include "numa/IslandEnforcer.h"
#include "numa/Topology.h"
#include "util/Fs.h"

namespace Atoll::numa::test {

inline constexpr const char* kMount = "/sys/fs/cgroup";
inline constexpr const char* kManagedRoot = "atoll.slice";  // atolld's own
inline constexpr const char* kIsland = "daemonvm";

// Polls `done` every 100 ms for up to `seconds`.
inline bool eventually(const std::function<bool()>& done, int seconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return done();
}

inline std::string statusLine(pid_t pid, const std::string& field) {
  auto status = readFile("/proc/" + std::to_string(pid) + "/status");
  if (!status) return {};
  size_t at = status->find(field + ":");
  if (at == std::string::npos) return {};
  size_t end = status->find('\n', at);
  return std::string(trim(status->substr(at + field.size() + 1, end - at - field.size() - 1)));
}

inline std::string cgroupOf(pid_t pid) {
  return std::string(trim(readFile("/proc/" + std::to_string(pid) + "/cgroup").value_or("")));
}

class IslandDaemonVmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* cli = std::getenv("ATOLL_CLI");
    const char* bin = std::getenv("ATOLL_VM_BIN");
    if (cli == nullptr || bin == nullptr)
      GTEST_SKIP() << "ATOLL_CLI / ATOLL_VM_BIN are not set (the test VM sets them)";
    cli_ = cli;
    atolld_ = std::string(bin) + "/atolld";
    if (::access(atolld_.c_str(), X_OK) != 0) GTEST_SKIP() << "no atolld at " << atolld_;
    auto root = CgroupV2::open(kMount);
    if (!root) GTEST_SKIP() << "no cgroup v2 at " << kMount;
    auto controllers = root->controllers();
    if (!controllers ||
        std::find(controllers->begin(), controllers->end(), "cpuset") == controllers->end())
      GTEST_SKIP() << "no cpuset controller in " << kMount;
    auto host = Topology::fromHost();
    ASSERT_TRUE(host) << host.error().message();
    if (host->cpus().size() < 4 || host->nodes().size() < 2)
      GTEST_SKIP() << "needs four CPUs and two NUMA nodes (" << host->summary() << ")";
    char dir[] = "/tmp/atoll-daemon-vm-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    socket_ = dir_ + "/atolld.sock";
    std::ofstream config(dir_ + "/atolld.toml");
    config << "[daemon]\ntick_ms = 1000\n"
           << "[api]\nsocket_path = \"" << socket_ << "\"\nsocket_group = \"\"\n"
           << "[metrics]\nenabled = false\n"
           << "[state]\ndirectory = \"" << dir_ << "/state\"\n"
           << "[subsystems.islands]\nbudget_ms = 500\n"
           << "[telemetry]\nenabled = false\n";
    ASSERT_TRUE(config.good());
    member_ = ::fork();
    ASSERT_GE(member_, 0);
    if (member_ == 0) {
      ::pause();
      ::_exit(0);
    }
  }

  void TearDown() override {
    stopDaemon(SIGTERM);
    if (member_ > 0) {
      ::kill(member_, SIGKILL);
      ::waitpid(member_, nullptr, 0);
    }
    if (auto host = Topology::fromHost()) {
      if (auto enforcer = IslandEnforcer::open(*host, kMount, kManagedRoot)) {
        (void)enforcer->remove(kIsland);
        if (auto islands = enforcer->islands(); islands && islands->empty())
          if (auto mount = Dir::open(kMount)) (void)mount->removeChild(kManagedRoot);
      }
    }
    if (!dir_.empty()) {
      const int removed = std::system(("rm -rf '" + dir_ + "'").c_str());
      EXPECT_EQ(removed, 0) << dir_;
    }
  }

  void startDaemon() {
    daemon_ = ::fork();
    ASSERT_GE(daemon_, 0);
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
    ASSERT_TRUE(eventually([&] { return ::access(socket_.c_str(), F_OK) == 0; }, 30))
        << "atolld did not open its socket; log:\n"
        << readFile(dir_ + "/atolld.log").value_or("");
  }

  void stopDaemon(int signal) {
    if (daemon_ <= 0) return;
    ::kill(daemon_, signal);
    ::waitpid(daemon_, nullptr, 0);
    daemon_ = 0;
    ::unlink(socket_.c_str());
  }

  int atoll(const std::string& arguments) {
    const std::string command = cli_ + " island --source daemon --socket " + socket_ + " " +
                                arguments + " >>" + dir_ + "/cli.log 2>&1";
    return WEXITSTATUS(std::system(command.c_str()));
  }

  // Runs the CLI and keeps its standard output.
  int atoll(const std::string& arguments, std::string& output) {
    const std::string outputPath = dir_ + "/cli.out";
    const std::string command = cli_ + " island --source daemon --socket " + socket_ + " " +
                                arguments + " >" + outputPath + " 2>>" + dir_ + "/cli.log";
    const int status = WEXITSTATUS(std::system(command.c_str()));
    output = readFile(outputPath).value_or("");
    return status;
  }

  std::string log() const {
    return "cli:\n" + readFile(dir_ + "/cli.log").value_or("") + "\natolld:\n" +
           readFile(dir_ + "/atolld.log").value_or("");
  }

  bool memberInPlace() {
    return statusLine(member_, "Cpus_allowed_list") == "2-3" &&
           cgroupOf(member_) == std::string("0::/") + kManagedRoot + "/" + kIsland;
  }

  std::string cli_, atolld_, dir_, socket_;
  pid_t member_ = 0;
  pid_t daemon_ = 0;
};

}  // namespace Atoll::numa::test
