// When waiting on an io_uring fails while requests are in flight, the block
// reader and the socket channel cancel and reap those requests before they
// return the error: a request left in flight would still write into a buffer
// its caller reuses, and its completion would be taken for one of the next
// call's.
//
// The failure is injected: this binary defines io_uring_submit_and_wait, so
// the transfer library (linked in statically) calls this definition instead
// of liburing's (a shared library), which it forwards to unless told to fail.
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
#include <vector>

#include "migrate/transfer/BlockIo.h"
#include "migrate/transfer/Channel.h"

namespace {

// How many of the next calls fail: each one submits what is queued (the
// requests are then in flight) and reports ENOMEM instead of waiting.
std::atomic<int> failingWaits{0};

}  // namespace

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
