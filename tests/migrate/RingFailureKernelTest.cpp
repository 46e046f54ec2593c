// When waiting on an io_uring fails while requests are in flight, the block
// reader, the block writer and the socket channel cancel and reap those
// requests before they return the error: a request left in flight would still
// use a buffer its caller reuses, and its completion would be taken for one of
// the next call's. A full submission queue the kernel refuses to take is an
// error, not a retry without end.
//
// The failures are injected: this binary defines io_uring_submit_and_wait and
// io_uring_submit, so the transfer library (linked in statically) calls these
// definitions instead of liburing's (a shared library), which they forward to
// unless told to fail.
#include <dlfcn.h>
#include <fcntl.h>
#include <liburing.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <future>
#include <map>
#include <optional>
#include <vector>

#include "migrate/transfer/BlockIo.h"
#include "migrate/transfer/Channel.h"

namespace {

// How many of the next calls fail: each one submits what is queued (the
// requests are then in flight) and reports ENOMEM instead of waiting.
std::atomic<int> failingWaits{0};
// How many of the next io_uring_submit calls fail with EBUSY, submitting
// nothing.
std::atomic<int> failingSubmits{0};

}  // namespace

extern "C" int io_uring_submit(struct io_uring* ring) {
  using Real = int (*)(struct io_uring*);
  static const Real real = reinterpret_cast<Real>(::dlsym(RTLD_NEXT, "io_uring_submit"));
  if (failingSubmits.load() > 0) {
    --failingSubmits;
    return -EBUSY;
  }
  return real(ring);
}

extern "C" int io_uring_submit_and_wait(struct io_uring* ring, unsigned waitFor) {
  using Real = int (*)(struct io_uring*, unsigned);
  static const Real real = reinterpret_cast<Real>(::dlsym(RTLD_NEXT, "io_uring_submit_and_wait"));
  if (failingWaits.load() > 0) {
    --failingWaits;
    io_uring_submit(ring);
    return -ENOMEM;
  }
  return real(ring, waitFor);
}

namespace Atoll::transfer {
namespace {

using namespace std::chrono_literals;

constexpr uint32_t kBlockSize = 4096;
constexpr uint64_t kBlocks = 8;

class RingFailure : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ring = IoRing::create(4);
    if (!ring) GTEST_SKIP() << "io_uring unavailable: " << ring.error().message();
    dir_ = std::filesystem::temp_directory_path() /
           ("atoll-ring-failure-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    failingWaits = 0;
    failingSubmits = 0;
    std::filesystem::remove_all(dir_);
  }

  std::filesystem::path dir_;
};

TEST_F(RingFailure, BlockReaderReapsItsReadsBeforeReturningTheError) {
  // Each block holds its index + 1 in every byte.
  std::string path = dir_ / "image";
  {
    UniqueFd out(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    ASSERT_TRUE(out.valid()) << std::strerror(errno);
    std::vector<uint8_t> block(kBlockSize);
    for (uint64_t i = 0; i < kBlocks; ++i) {
      std::memset(block.data(), static_cast<int>(i + 1), block.size());
      ASSERT_EQ(::write(out.get(), block.data(), block.size()), ssize_t(block.size()));
    }
  }
  UniqueFd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(in.valid()) << std::strerror(errno);
  // Fewer buffers than blocks: the first pass has all of them in flight.
  auto io = BlockIoContext::create(4, kBlockSize, 0, true);
  ASSERT_TRUE(io) << io.error().message();
  if (io->ring == nullptr) GTEST_SKIP() << "the kernel's ring does no file reads";
  BlockHashMap geometry(kBlocks * kBlockSize, kBlockSize);
  BlockReader reader(*io, in.get(), geometry, path);
  std::vector<uint64_t> blocks;
  for (uint64_t i = 0; i < kBlocks; ++i) blocks.push_back(i);

  failingWaits = 1;
  auto failed = reader.forEach(blocks, [](uint64_t, size_t, std::span<uint8_t>) { return ok(); });
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().errnum, ENOMEM) << failed.error().message();

  // The same reader and ring again: every buffer must be free, and no
  // completion of the failed pass may stand in for a read of this one.
  std::map<uint64_t, int> contents;
  auto again = std::async(std::launch::async, [&] {
    return reader.forEach(blocks, [&](uint64_t index, size_t, std::span<uint8_t> data) {
      bool uniform = !data.empty() &&
                     std::all_of(data.begin(), data.end(), [&](uint8_t b) { return b == data[0]; });
      contents[index] = uniform && data.size() == kBlockSize ? data[0] : -1;
      return ok();
    });
  });
  if (again.wait_for(10s) != std::future_status::ready) {
    reader.abandon();  // wakes a pass that waits for buffers that never come back
    ADD_FAILURE() << "the second pass waited for buffers the failed pass kept";
  }
  auto second = again.get();
  ASSERT_TRUE(second) << second.error().message();
  ASSERT_EQ(contents.size(), kBlocks);
  for (uint64_t i = 0; i < kBlocks; ++i) EXPECT_EQ(contents[i], int(i + 1)) << "block " << i;
}

TEST_F(RingFailure, BlockWriterHandsBackEveryBufferBeforeReturningTheError) {
  std::string path = dir_ / "target";
  UniqueFd out(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  ASSERT_TRUE(out.valid()) << std::strerror(errno);
  auto io = BlockIoContext::create(kBlocks, kBlockSize, 0, true);
  ASSERT_TRUE(io) << io.error().message();
  if (io->ring == nullptr) GTEST_SKIP() << "the kernel's ring does no file writes";
  BlockHashMap geometry(kBlocks * kBlockSize, kBlockSize);
  std::map<size_t, int> handedBack;
  std::map<uint64_t, bool> written;
  BlockWriter writer(*io, out.get(), geometry, path,
                     [&](uint64_t index, size_t buffer, bool complete) {
                       ++handedBack[buffer];
                       written[index] = complete;
                     });
  // Block i is written from buffer i, every byte `fill + i`.
  auto writeBlock = [&](uint64_t i, int fill) {
    std::memset(io->pool.data(i), fill + static_cast<int>(i), kBlockSize);
    return writer.write(i, i, kBlockSize);
  };
  auto fileBlock = [&](uint64_t i) {
    std::vector<uint8_t> block(kBlockSize);
    EXPECT_EQ(::pread(out.get(), block.data(), block.size(), static_cast<off_t>(i * kBlockSize)),
              ssize_t(kBlockSize))
        << std::strerror(errno);
    return block;
  };

  for (uint64_t i = 0; i + 1 < kBlocks; ++i) ASSERT_TRUE(writeBlock(i, 1)) << "block " << i;
  // The last write is submitted, and the wait after it fails.
  failingWaits = 1;
  auto failed = writeBlock(kBlocks - 1, 1);
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().errnum, ENOMEM) << failed.error().message();
  // Every buffer is the caller's again, and what the writer reported as
  // written is in the file.
  for (uint64_t i = 0; i < kBlocks; ++i) {
    EXPECT_EQ(handedBack[i], 1) << "buffer " << i;
    if (written[i]) {
      EXPECT_EQ(fileBlock(i), std::vector<uint8_t>(kBlockSize, uint8_t(1 + i))) << "block " << i;
    }
  }

  // The same writer and ring again: no completion of the failed pass may
  // stand in for a write of this one.
  for (uint64_t i = 0; i < kBlocks; ++i) ASSERT_TRUE(writeBlock(i, 0x40)) << "block " << i;
  auto secondPass = writer.drain();
  ASSERT_TRUE(secondPass) << secondPass.error().message();
  for (uint64_t i = 0; i < kBlocks; ++i) {
    EXPECT_EQ(handedBack[i], 2) << "buffer " << i;
    EXPECT_TRUE(written[i]) << "block " << i;
    EXPECT_EQ(fileBlock(i), std::vector<uint8_t>(kBlockSize, uint8_t(0x40 + i))) << "block " << i;
  }
}

TEST_F(RingFailure, AFullSubmissionQueueTheKernelRefusesIsAnError) {
  auto ring = IoRing::create(4);
  ASSERT_TRUE(ring) << ring.error().message();
  failingSubmits = 1;
  // Twice the queue's 4 entries: room enough to fill it and, were the refused
  // submit retried, to go on past it.
  std::optional<Error> refused;
  unsigned queued = 0;
  for (unsigned i = 0; i < 8 && !refused; ++i) {
    auto sqe = (*ring)->nextSqe();
    if (!sqe) {
      refused = sqe.error();
      break;
    }
    io_uring_prep_nop(*sqe);
    (*sqe)->user_data = i;
    ++queued;
  }
  ASSERT_TRUE(refused) << "nextSqe went on after the kernel refused the full queue";
  EXPECT_EQ(queued, 4u);
  EXPECT_EQ(refused->errnum, EBUSY) << refused->message();
  EXPECT_NE(refused->message().find("io_uring_submit io_uring fd "), std::string::npos)
      << refused->message();

  // What was queued stays queued: once the kernel takes submissions again,
  // every entry goes out and completes.
  ASSERT_TRUE((*ring)->submitAndWait(queued));
  std::vector<uint64_t> completed;
  (*ring)->drain([&](uint64_t data, int res, unsigned) {
    EXPECT_EQ(res, 0);
    completed.push_back(data);
  });
  EXPECT_EQ(completed, (std::vector<uint64_t>{0, 1, 2, 3}));
}

TEST_F(RingFailure, SocketChannelCancelsTheReceiveBeforeReturningTheError) {
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0) << std::strerror(errno);
  UniqueFd peer(pair[1]);
  SocketOptions options;
  options.idleTimeout = 5s;
  auto channel = SocketChannel::create(UniqueFd(pair[0]), "socketpair", options);
  ASSERT_TRUE(channel) << channel.error().message();
  if (!(*channel)->usesIoUring()) GTEST_SKIP() << "the kernel's ring has no RECV";

  std::array<uint8_t, 16> givenUp{};
  failingWaits = 1;
  auto failed = (*channel)->recvSome(givenUp.data(), givenUp.size());
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().errnum, ENOMEM) << failed.error().message();

  // What arrives now belongs to the next receive, not to the buffer the
  // failed one was given.
  ASSERT_EQ(::send(peer.get(), "hello", 5, MSG_NOSIGNAL), 5);
  std::array<uint8_t, 16> next{};
  auto received = (*channel)->recvSome(next.data(), next.size());
  ASSERT_TRUE(received) << received.error().message();
  EXPECT_EQ(*received, 5u);
  EXPECT_EQ(std::memcmp(next.data(), "hello", 5), 0);
  EXPECT_EQ(givenUp, (std::array<uint8_t, 16>{})) << "the failed receive's buffer was written";
}

}  // namespace
}  // namespace Atoll::transfer
