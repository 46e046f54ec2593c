// Block I/O accuracy: O_DIRECT reads and writes of a known size from a test
// cgroup are counted within 1 %. Direct I/O is issued in the task's own
// context, so the request is charged to its cgroup. The file never enters
// the page cache.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "TestCgroup.h"
#include "bpf/loaders/BlockTelemetry.h"

namespace Atoll::telemetry {
namespace {

constexpr size_t kChunk = 1 << 20;
constexpr int kChunks = 4;
constexpr size_t kTotal = kChunk * kChunks;
// A directory on the root filesystem: /tmp is often tmpfs, /var/tmp is not.
constexpr const char* kScratchDir = "/var/tmp";

// Empty when the directory's filesystem sits on a block device.
std::string notBlockBacked(const char* dir) {
  struct stat st {};
  if (::stat(dir, &st) != 0) return std::string("cannot stat ") + dir;
  std::string sysfs =
      "/sys/dev/block/" + std::to_string(major(st.st_dev)) + ":" + std::to_string(minor(st.st_dev));
  if (::access(sysfs.c_str(), F_OK) != 0)
    return std::string(dir) + " is not on a block device (" + sysfs + " missing)";
  return {};
}

int directIo(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_DIRECT | O_CLOEXEC);
  if (fd < 0) return 1;
  void* buf = nullptr;
  if (::posix_memalign(&buf, 4096, kChunk) != 0) return 2;
  std::memset(buf, 0x5a, kChunk);
  for (int i = 0; i < kChunks; ++i)
    if (::pwrite(fd, buf, kChunk, static_cast<off_t>(i * kChunk)) != static_cast<ssize_t>(kChunk))
      return 3;
  for (int i = 0; i < kChunks; ++i)
    if (::pread(fd, buf, kChunk, static_cast<off_t>(i * kChunk)) != static_cast<ssize_t>(kChunk))
      return 4;
  ::free(buf);
  ::close(fd);
  return 0;
}

TEST(BlockAccuracy, DirectReadsAndWritesCountedWithinOnePercent) {
  auto access = testing::cgroup2ForTests();
  if (!access.skipReason.empty()) GTEST_SKIP() << access.skipReason;
  if (auto reason = notBlockBacked(kScratchDir); !reason.empty()) GTEST_SKIP() << reason;
  auto block = BlockTelemetry::start({});
  if (!block) GTEST_SKIP() << "block programs unavailable: " << block.error().message();

  std::string path = std::string(kScratchDir) + "/atoll-block-test-" + std::to_string(::getpid());
  {
    // Allocate the blocks first, so the measured writes overwrite in place
    // and the filesystem adds no metadata I/O of its own in our context.
    // Direct writes here too: a direct write over pages still cached must
    // drop them first, and where it cannot, the filesystem quietly falls
    // back to a buffered write that a flusher thread sends out later,
    // charged to its cgroup. Bytes are counted at submission, so a
    // completion the programs do not see costs none of them.
    int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_DIRECT | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    void* zeros = nullptr;
    ASSERT_EQ(::posix_memalign(&zeros, 4096, kTotal), 0);
    std::memset(zeros, 0, kTotal);
    const ssize_t written = ::write(fd, zeros, kTotal);
    ::free(zeros);
    ASSERT_EQ(written, static_cast<ssize_t>(kTotal)) << std::strerror(errno);
    ASSERT_EQ(::fsync(fd), 0);
    ::close(fd);
  }
  auto cgroup = testing::TestCgroup::create(access.mount, "atoll-test-block");
  ASSERT_TRUE(cgroup) << cgroup.error().message();
  pid_t pid = cgroup->fork([&] { return directIo(path); });
  ASSERT_GT(pid, 0);
  cgroup->start();
  int status = -1;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ::unlink(path.c_str());
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "worker status " << status;

  auto all = (*block)->read();
  ASSERT_TRUE(all) << all.error().message();
  auto it = all->find(cgroup->id());
  ASSERT_NE(it, all->end()) << "no block I/O charged to the test cgroup";
  const BlockCounters& c = it->second;
  // What else the programs saw, should a count fall short: where bytes of
  // that size went instead, and whether a map overflowed.
  std::string seen =
      "read ops " + std::to_string(c.readOps) + ", write ops " + std::to_string(c.writeOps);
  if (auto errors = (*block)->errors())
    seen += ", cgroup map full " + std::to_string(errors->mapFull) + ", request table full " +
            std::to_string(errors->inflightFull);
  for (const auto& [id, other] : *all)
    if (id != cgroup->id() && (other.writeBytes >= kChunk || other.readBytes >= kChunk))
      seen += "; cgroup " + std::to_string(id) + " read " + std::to_string(other.readBytes) +
              " and wrote " + std::to_string(other.writeBytes) + " bytes";
  EXPECT_NEAR(static_cast<double>(c.writeBytes), kTotal, 0.01 * kTotal) << seen;
  EXPECT_NEAR(static_cast<double>(c.readBytes), kTotal, 0.01 * kTotal) << seen;
  EXPECT_GE(c.readOps, 1u);
  EXPECT_GE(c.writeOps, 1u);
  EXPECT_EQ(totalCount(c.latencyHistogram), c.readOps + c.writeOps);
}

}  // namespace
}  // namespace Atoll::telemetry
