// The rollback of a change to the islands, on a fixture directory: what it
// puts back, and what the change's caller learns when the kernel refuses a
// write-back (the half-way failures themselves are provoked in the test VM,
// IslandRollbackVmTest).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "numa/IslandEnforcer.h"

namespace Atoll::numa {
namespace {

namespace fs = std::filesystem;

class IslandRollback : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("atoll-rollback-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "alpha");
  }
  void TearDown() override { fs::remove_all(root_); }

  std::string path(const std::string& relative) const { return (root_ / relative).string(); }
  // The change's own writes, as cgroupfs would hold them after it.
  void write(const std::string& relative, const std::string& value) const {
    std::ofstream(root_ / relative, std::ios::trunc) << value;
  }
  std::string read(const std::string& relative) const {
    std::ifstream in(root_ / relative);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  fs::path root_;
};

TEST_F(IslandRollback, PutsBackEveryWriteNewestFirstAndRemovesWhatItCreated) {
  CgroupChangeJournal journal;
  // cpu.weight went 100 -> 150 -> 200; only newest first ends at 100.
  journal.wrote(path("alpha"), "cpu.weight", "100");
  journal.wrote(path("alpha"), "cpu.weight", "150");
  write("alpha/cpu.weight", "200");
  fs::create_directory(root_ / "gamma");
  journal.created(path("gamma"));

  EXPECT_TRUE(journal.rollBack().empty());
  EXPECT_EQ(read("alpha/cpu.weight"), "100");
  EXPECT_FALSE(fs::exists(root_ / "gamma"));
}

// A write-back that fails does not stop the others, and each one that
// failed comes back with its file, the value it was to get back and the
// errno.
TEST_F(IslandRollback, GoesOnPastAFailedWriteBackAndReturnsEachFailure) {
  CgroupChangeJournal journal;
  journal.wrote(path("alpha"), "cpu.weight", "100");
  write("alpha/cpu.weight", "300");
  fs::create_directory(root_ / "gamma");
  journal.created(path("gamma"));
  journal.wrote(path("gamma"), "cpu.max", "max 100000");
  journal.wrote(path("alpha"), "cpu.max", "max 100000");
  // The kernel refusing: alpha's cpu.max cannot be opened for writing any
  // more, gamma's is gone, and gamma can no longer be removed (not empty).
  fs::create_directory(root_ / "alpha/cpu.max");
  fs::create_directory(root_ / "gamma/busy");

  auto notRestored = journal.rollBack();
  EXPECT_EQ(read("alpha/cpu.weight"), "100");
  ASSERT_EQ(notRestored.size(), 3u);
  EXPECT_EQ(notRestored[0].path, path("alpha/cpu.max"));
  EXPECT_EQ(notRestored[0].value, "max 100000");
  EXPECT_EQ(notRestored[0].errnum, EISDIR);
  EXPECT_EQ(notRestored[1].path, path("gamma/cpu.max"));
  EXPECT_EQ(notRestored[1].value, "max 100000");
  EXPECT_EQ(notRestored[1].errnum, ENOENT);
  EXPECT_EQ(notRestored[2].path, path("gamma"));
  EXPECT_EQ(notRestored[2].errnum, ENOTEMPTY);
  // Rolled back once: a second rollback has nothing left to do.
  EXPECT_TRUE(journal.rollBack().empty());
}

TEST_F(IslandRollback, CallerLearnsWhatTheRollbackCouldNotPutBack) {
  const Error failure =
      Error::fromErrno("write", "/sys/fs/cgroup/atoll.slice/beta/cpu.weight", EACCES, "300");
  const Error clean = afterRollback(failure, {});
  EXPECT_EQ(clean.errnum, EACCES);
  EXPECT_NE(clean.message().find(failure.message()), std::string::npos) << clean.message();
  EXPECT_NE(clean.message().find("nothing was changed"), std::string::npos) << clean.message();

  const Error left = afterRollback(
      failure,
      {Error::fromErrno("write", "/sys/fs/cgroup/atoll.slice/alpha/cpuset.cpus", EBUSY, "1"),
       Error::fromErrno("rmdir", "/sys/fs/cgroup/atoll.slice/gamma", EBUSY)});
  const std::string message = left.message();
  EXPECT_EQ(left.path, failure.path);
  EXPECT_EQ(left.errnum, EACCES);
  EXPECT_EQ(message.find("nothing was changed"), std::string::npos) << message;
  for (const std::string& named :
       {failure.message(), std::string("could not put back 2 changes"),
        std::string("write /sys/fs/cgroup/atoll.slice/alpha/cpuset.cpus value '1': ") +
            std::strerror(EBUSY) + " (errno 16)",
        std::string("rmdir /sys/fs/cgroup/atoll.slice/gamma: ") + std::strerror(EBUSY)})
    EXPECT_NE(message.find(named), std::string::npos) << named << "\n" << message;
}

}  // namespace
}  // namespace Atoll::numa
