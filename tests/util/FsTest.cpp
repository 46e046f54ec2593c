#include "util/Fs.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

namespace Atoll {
namespace {

class FsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/atoll-fs-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  std::string root_;
};

TEST_F(FsTest, WriteThenReadThroughDirfd) {
  auto dir = Dir::open(root_);
  ASSERT_TRUE(dir) << dir.error().message();
  ASSERT_TRUE(dir->makeChild("island"));
  auto child = dir->openChild("island");
  ASSERT_TRUE(child);
  // Control files must exist to be written (O_WRONLY without O_CREAT).
  ASSERT_FALSE(child->writeFile("cpuset.cpus", "2-3"));
  {
    FILE* f = fopen((root_ + "/island/cpuset.cpus").c_str(), "w");
    fclose(f);
  }
  ASSERT_TRUE(child->writeFile("cpuset.cpus", "2-3"));
  auto text = child->readFile("cpuset.cpus");
  ASSERT_TRUE(text);
  EXPECT_EQ(*text, "2-3");
}

TEST_F(FsTest, ErrorsNamePathAndErrno) {
  auto dir = Dir::open(root_);
  ASSERT_TRUE(dir);
  auto missing = dir->readFile("nope");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().errnum, ENOENT);
  EXPECT_EQ(missing.error().path, root_ + "/nope");
  auto twice = dir->makeChild("a");
  ASSERT_TRUE(twice);
  EXPECT_FALSE(dir->makeChild("a"));
  EXPECT_TRUE(dir->makeChild("a", /*allowExisting=*/true));
}

TEST_F(FsTest, ChildSurvivesRenameOfItsPath) {
  // A kept dirfd keeps pointing at the same directory even when the path is
  // reused: the property that stops a reused cgroup name being confused with
  // its predecessor.
  auto dir = Dir::open(root_);
  ASSERT_TRUE(dir);
  ASSERT_TRUE(dir->makeChild("vm"));
  auto vm = dir->openChild("vm");
  ASSERT_TRUE(vm);
  {
    FILE* f = fopen((root_ + "/vm/id").c_str(), "w");
    fputs("old", f);
    fclose(f);
  }
  std::filesystem::rename(root_ + "/vm", root_ + "/vm-gone");
  ASSERT_TRUE(dir->makeChild("vm"));
  auto text = vm->readFile("id");
  ASSERT_TRUE(text);
  EXPECT_EQ(*text, "old");
}

TEST_F(FsTest, ListAndTrim) {
  auto dir = Dir::open(root_);
  ASSERT_TRUE(dir);
  ASSERT_TRUE(dir->makeChild("b"));
  ASSERT_TRUE(dir->makeChild("a"));
  auto names = dir->list();
  ASSERT_TRUE(names);
  std::sort(names->begin(), names->end());
  EXPECT_EQ(*names, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(trim("  0-3\n"), "0-3");
  EXPECT_EQ(trim("\n"), "");
}

TEST_F(FsTest, CreatedFilesGetTheRequestedMode) {
  auto dir = Dir::open(root_);
  ASSERT_TRUE(dir);
  mode_t previous = ::umask(022);
  auto fd = dir->openFile("journal", O_WRONLY | O_CREAT | O_EXCL, 0640);
  ::umask(previous);
  ASSERT_TRUE(fd) << fd.error().message();
  struct stat st {};
  ASSERT_EQ(::fstat(fd->get(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
}

}  // namespace
}  // namespace Atoll
