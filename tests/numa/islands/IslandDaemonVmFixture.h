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

#include "tests/runtime/AtolldInVm.h"
#include "util/Fs.h"

namespace Atoll::numa::test {

inline constexpr const char* kMount = Atoll::test::AtolldInVm::kMount;
inline constexpr const char* kManagedRoot = Atoll::test::AtolldInVm::kManagedRoot;
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
    if (std::string why = daemon_.prepare("atoll-daemon-vm", 4); !why.empty()) GTEST_SKIP() << why;
    dir_ = daemon_.dir();
    socket_ = daemon_.socket();
    cli_ = daemon_.cli();
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
    daemon_.stop(SIGTERM);
    if (member_ > 0) {
      ::kill(member_, SIGKILL);
      ::waitpid(member_, nullptr, 0);
    }
    Atoll::test::AtolldInVm::removeIslands({kIsland});
  }

  void startDaemon() {
    ASSERT_TRUE(daemon_.start());
    ASSERT_TRUE(eventually([&] { return ::access(socket_.c_str(), F_OK) == 0; }, 30))
        << "atolld did not open its socket; log:\n"
        << readFile(dir_ + "/atolld.log").value_or("");
  }

  void stopDaemon(int signal) { daemon_.stop(signal); }

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

  std::string log() const { return daemon_.log(); }

  bool memberInPlace() {
    return statusLine(member_, "Cpus_allowed_list") == "2-3" &&
           cgroupOf(member_) == std::string("0::/") + kManagedRoot + "/" + kIsland;
  }

  Atoll::test::AtolldInVm daemon_;
  std::string cli_, dir_, socket_;
  pid_t member_ = 0;
};

}  // namespace Atoll::numa::test
