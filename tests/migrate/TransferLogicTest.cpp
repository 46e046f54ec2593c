// Pure logic of the transfer engine: block maps, fair shares, pacing, names,
// progress records, the hand-off between a pipeline's threads.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <numeric>
#include <thread>

#include "TestImages.h"

#include "migrate/transfer/Bandwidth.h"
#include "migrate/transfer/BlockHashMap.h"
#include "migrate/transfer/ImageSender.h"
#include "migrate/transfer/Net.h"
#include "migrate/transfer/Pipeline.h"
#include "migrate/transfer/StagingArea.h"
#include "migrate/transfer/StreamTunnel.h"

namespace Atoll::transfer {
namespace {

TEST(BlockHashMap, GeometryAndZeroBlocks) {
  BlockHashMap map((5u << 20) + 100, 1u << 20);
  EXPECT_EQ(map.blockCount(), 6u);
  EXPECT_EQ(map.blockLength(5), 100u);
  EXPECT_EQ(map.missingBlocks(), 6u);
  std::vector<uint8_t> zeros(4096, 0), data(4096, 0);
  data[4095] = 1;
  EXPECT_EQ(BlockHashMap::hashBlock(3, zeros), BlockHashMap::kZeroBlockHash);
  uint64_t h = BlockHashMap::hashBlock(3, data);
  EXPECT_GT(h, BlockHashMap::kZeroBlockHash);
  EXPECT_NE(h, BlockHashMap::hashBlock(4, data)) << "hash depends on the block index";
}

TEST(BlockHashMap, ImageHashChangesWithAnyBlock) {
  BlockHashMap a(8u << 20, 1u << 20), b(8u << 20, 1u << 20);
  for (uint64_t i = 0; i < 8; ++i) {
    a.set(i, 100 + i);
    b.set(i, 100 + i);
  }
  EXPECT_EQ(a.imageHash(), b.imageHash());
  b.set(7, 5);
  EXPECT_NE(a.imageHash(), b.imageHash());
  EXPECT_FALSE(a.assign(std::vector<uint64_t>(3)));
}

TEST(FairShares, MaxMinWithCaps) {
  EXPECT_EQ(fairShares(300, {0, 0, 0}), (std::vector<uint64_t>{100, 100, 100}));
  // One transfer capped at 50: the others split the rest.
  EXPECT_EQ(fairShares(300, {50, 0, 0}), (std::vector<uint64_t>{50, 125, 125}));
  EXPECT_EQ(fairShares(0, {50, 0}), (std::vector<uint64_t>{50, 0}));
  auto shares = fairShares(1000, {100, 200, 900, 0});
  EXPECT_EQ(shares[0], 100u);
  EXPECT_EQ(shares[1], 200u);
  EXPECT_EQ(std::accumulate(shares.begin(), shares.end(), uint64_t{0}), 1000u);
}

// A clock tests step by hand: sleeping advances it.
struct SteppedClock {
  std::chrono::nanoseconds now{std::chrono::seconds(100)};
  std::chrono::nanoseconds slept{0};
  PacingClock clock() {
    return {[this] { return now; },
            [this](std::chrono::nanoseconds d) {
              now += d;
              slept += d;
            }};
  }
};

TEST(TransferLimiter, PacesToTheCapAndFollowsLiveChanges) {
  SteppedClock time;
  TransferLimiter limiter(100 << 20, nullptr, time.clock());  // 100 MiB/s
  for (int i = 0; i < 200; ++i) limiter.acquire(1 << 20);     // 200 MiB
  double seconds = std::chrono::duration<double>(time.slept).count();
  EXPECT_NEAR(seconds, 2.0, 0.05);
  limiter.setLimit(200 << 20);
  time.slept = {};
  for (int i = 0; i < 200; ++i) limiter.acquire(1 << 20);
  EXPECT_NEAR(std::chrono::duration<double>(time.slept).count(), 1.0, 0.05);
  limiter.setLimit(0);
  time.slept = {};
  limiter.acquire(1 << 30);
  EXPECT_EQ(time.slept.count(), 0);
}

TEST(TransferLimiter, ARaisedCapIsNotHeldBackByTheOldOnesDebt) {
  SteppedClock time;
  TransferLimiter limiter(1 << 10, nullptr, time.clock());  // 1 KiB/s
  limiter.acquire(1 << 20);   // leaves at once; its airtime runs for 1024 s
  limiter.setLimit(1 << 30);  // raised to 1 GiB/s
  limiter.acquire(1 << 20);
  // What is left of the first MiB's airtime goes at the new rate: 1 ms.
  EXPECT_LT(std::chrono::duration<double>(time.slept).count(), 0.01)
      << "the raised cap still waited for the old one";
}

TEST(TransferLimiter, ACapLiftedDuringAWaitEndsTheWait) {
  TransferLimiter* paced = nullptr;
  std::chrono::nanoseconds now = std::chrono::seconds(100), slept{0};
  PacingClock clock{[&] { return now; },
                    [&](std::chrono::nanoseconds d) {
                      // The operator lifts the cap while the sender waits.
                      if (paced != nullptr) paced->setLimit(0);
                      now += d;
                      slept += d;
                    }};
  TransferLimiter limiter(1 << 10, nullptr, clock);  // 1 KiB/s
  limiter.acquire(1 << 20);
  paced = &limiter;
  limiter.acquire(1 << 20);  // would wait 1024 s under the old cap
  EXPECT_LE(std::chrono::duration<double>(slept).count(), 1.0)
      << "the wait went on after the cap was lifted";
}

TEST(FairShares, EveryTransferKeepsACapUnderATinyHostCap) {
  // A share of 0 reads as "uncapped": a host cap below one byte per second
  // per transfer must not lift the cap for some of them.
  for (uint64_t share : fairShares(2, {0, 0, 0})) EXPECT_GT(share, 0u);
  for (uint64_t share : fairShares(1, {5, 0})) EXPECT_GT(share, 0u);
}

TEST(TransferLimiter, HostCapIsSharedAndAdjustable) {
  SteppedClock time;
  HostBandwidth host(100 << 20);
  TransferLimiter a(0, &host, time.clock());
  {
    TransferLimiter b(0, &host, time.clock());
    EXPECT_EQ(host.activeTransfers(), 2u);
    EXPECT_EQ(a.effectiveRate(), 50u << 20);
    b.setLimit(10 << 20);
    EXPECT_EQ(a.effectiveRate(), 90u << 20);
    host.setLimit(40 << 20);
    EXPECT_EQ(a.effectiveRate(), 30u << 20);
  }
  EXPECT_EQ(a.effectiveRate(), 40u << 20);
}

TEST(ImageName, RefusesEscapes) {
  for (const char* bad : {"", "/etc/passwd", "../x", "a/../../x", "a//b", "./x", ".hidden",
                          "a/.atoll-progress", "x\n"}) {
    EXPECT_FALSE(checkImageName(bad)) << bad;
  }
  for (const char* good : {"disk.img", "vm1/disk.qcow2", "a-b_c.raw"}) {
    EXPECT_TRUE(checkImageName(good)) << good;
  }
}

TEST(ProgressRecord, RoundTripsAndDetectsDamage) {
  ProgressRecord record{7, 3u << 20, 1u << 20, {0, 1, 99}};
  auto bytes = encodeProgress(record);
  auto back = decodeProgress(bytes, "p");
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(back->transferId, 7u);
  EXPECT_EQ(back->heldHashes, record.heldHashes);
  bytes[30] ^= 1;
  EXPECT_FALSE(decodeProgress(bytes, "p"));
  bytes.resize(10);
  EXPECT_FALSE(decodeProgress(bytes, "p"));
}

TEST(Endpoint, ParsesAndNamesBadInput) {
  auto e = parseEndpoint("10.231.0.2:7477");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->host, "10.231.0.2");
  EXPECT_EQ(e->port, 7477);
  auto v6 = parseEndpoint("[::1]:80");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  for (const char* bad : {"nohost", "host:", "host:99999", "host:12a", "[::1]80"}) {
    auto r = parseEndpoint(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().message().find(bad), std::string::npos);
  }
}

class SerialWorkerTest : public ::testing::TestWithParam<StepThread> {};

TEST_P(SerialWorkerTest, RunsStepsInOrderAndSkipsAfterAFailure) {
  const bool inPlace = GetParam() == StepThread::kCaller;
  std::vector<int> ran;
  std::vector<int> skipped;
  std::vector<std::thread::id> ranOn;
  bool woken = false;
  {
    SerialWorker worker(GetParam(), 2, [&] { woken = true; });
    for (int i = 0; i < 5; ++i) {
      ASSERT_TRUE(worker.post([&, i](bool skip) -> Result<void> {
        (skip ? skipped : ran).push_back(i);
        ranOn.push_back(std::this_thread::get_id());
        return ok();
      }));
      // In place, a step has run by the time post() returns.
      if (inPlace) {
        EXPECT_EQ(ran.size(), size_t(i + 1));
      }
    }
    ASSERT_TRUE(worker.drain());
    EXPECT_EQ(ran, (std::vector<int>{0, 1, 2, 3, 4}));
    for (auto id : ranOn) EXPECT_EQ(id == std::this_thread::get_id(), inPlace);
    EXPECT_FALSE(woken);

    auto failing = worker.post(
        [](bool) -> Result<void> { return Error::invalid("send", "peer", "7", "link down"); });
    // Queued, the failure shows at the next post or drain; in place, at once.
    EXPECT_EQ(bool(failing), !inPlace);
    auto drained = worker.drain();
    ASSERT_FALSE(drained);
    EXPECT_NE(drained.error().message().find("link down"), std::string::npos);
    EXPECT_TRUE(woken) << "onFailure wakes whoever waits on the worker";
    // Later steps only give back what they hold, and the poster learns why.
    auto posted = worker.post([&](bool skip) -> Result<void> {
      (skip ? skipped : ran).push_back(9);
      return ok();
    });
    ASSERT_FALSE(posted);
    EXPECT_NE(posted.error().message().find("link down"), std::string::npos);
  }
  EXPECT_EQ(skipped, (std::vector<int>{9}));
  EXPECT_EQ(ran.size(), 5u);
}

INSTANTIATE_TEST_SUITE_P(Where, SerialWorkerTest,
                         ::testing::Values(StepThread::kCaller, StepThread::kOwn),
                         [](const auto& info) {
                           return std::string(info.param == StepThread::kCaller ? "InPlace"
                                                                                : "OwnThread");
                         });

TEST(FreeBuffers, TakeWaitsForAGiveAndCloseWakesForGood) {
  FreeBuffers buffers(2);
  auto a = buffers.tryTake();
  auto b = buffers.tryTake();
  ASSERT_TRUE(a && b);
  EXPECT_NE(*a, *b);
  EXPECT_FALSE(buffers.tryTake());
  std::thread giver([&] { buffers.give(*a); });
  auto again = buffers.take();
  giver.join();
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, *a);
  std::thread closer([&] { buffers.close(); });
  EXPECT_FALSE(buffers.take()) << "a closed pool hands out nothing";
  closer.join();
}

// A receiver that answers Hello with anything but HelloAck or ErrorReport
// broke the protocol: the sender names the frame rather than reading its
// payload as a refusal's text.
TEST(ImageSender, AttachNamesAFrameOutOfPlaceRatherThanARefusal) {
  testing::TempDir tmp;
  std::string image = tmp / "source.img";
  testing::makeSparseRandomImage(image, 16 * 4096, 1, 16 * 4096, 5);
  SenderOptions options;
  options.remoteName = "target.img";
  options.blockSize = 4096;
  auto sender = ImageSender::open(image, options);
  ASSERT_TRUE(sender) << sender.error().message();
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  std::thread receiver([fd = fds[1]] {
    auto channel = SocketChannel::create(UniqueFd(fd), "sender", SocketOptions{});
    if ((*channel)->recvFrame()) (void)(*channel)->sendFrame(encode(RoundAck{7}));
  });
  auto channel = SocketChannel::create(UniqueFd(fds[0]), "receiver", SocketOptions{});
  auto attached = (*sender)->attach(std::move(*channel));
  receiver.join();
  ASSERT_FALSE(attached);
  EXPECT_NE(attached.error().message().find("expected HelloAck, got RoundAck"), std::string::npos)
      << attached.error().message();
  EXPECT_EQ(attached.error().message().find("refused"), std::string::npos)
      << attached.error().message();
}

// The same for a tunnel: a peer that answers TunnelOpen with another frame
// than TunnelAck or ErrorReport is named as such, not as a refusal.
TEST(TunnelSource, NamesAFrameOutOfPlaceRatherThanARefusal) {
  testing::TempDir tmp;
  auto listener = listenTcp(Endpoint{"127.0.0.1", 0});
  ASSERT_TRUE(listener) << listener.error().message();
  auto port = boundPort(listener->get());
  ASSERT_TRUE(port);
  auto tunnel =
      TunnelSource::create(tmp / "qemu.sock", Endpoint{"127.0.0.1", *port}, 1, SocketOptions{});
  ASSERT_TRUE(tunnel) << tunnel.error().message();
  std::thread peer([fd = listener->get()] {
    auto accepted = acceptConnection(fd, nullptr, std::chrono::seconds(5));
    if (!accepted) return;
    auto channel = SocketChannel::create(std::move(*accepted), "source", SocketOptions{});
    if ((*channel)->recvFrame()) (void)(*channel)->sendFrame(encode(RoundAck{7}));
  });
  auto prepared = (*tunnel)->prepare(1);
  peer.join();
  ASSERT_FALSE(prepared);
  EXPECT_NE(prepared.error().message().find("expected TunnelAck, got RoundAck"), std::string::npos)
      << prepared.error().message();
  EXPECT_EQ(prepared.error().message().find("refused"), std::string::npos)
      << prepared.error().message();
}

// The tunnel's stop() wakes its accepting thread through an eventfd; a
// tunnel made without one (descriptors exhausted) could never be stopped.
TEST(TunnelSource, CreateFailsWhenNoDescriptorIsLeftToWakeIt) {
  testing::TempDir tmp;
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  constexpr rlim_t kFewDescriptors = 256;
  rlimit few = saved;
  few.rlim_cur = std::min<rlim_t>(saved.rlim_cur, kFewDescriptors);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &few), 0);
  // Every descriptor taken but one: the tunnel needs two (its listening
  // socket and its eventfd).
  std::vector<UniqueFd> filler;
  for (;;) {
    int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) break;
    filler.emplace_back(fd);
  }
  ASSERT_FALSE(filler.empty());
  filler.pop_back();
  auto tunnel =
      TunnelSource::create(tmp / "qemu.sock", Endpoint{"127.0.0.1", 1}, 1, SocketOptions{});
  filler.clear();
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  ASSERT_FALSE(tunnel) << "a tunnel that stop() cannot wake";
  EXPECT_NE(tunnel.error().message().find("Too many open files"), std::string::npos)
      << tunnel.error().message();
  EXPECT_FALSE(testing::exists(tmp / "qemu.sock")) << "the refused tunnel's socket stays behind";
}

std::string contents(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// One image name has one temporary file: a second session for it while the
// first still writes would share that file (truncating the first one's data,
// or writing into the image after the first one committed it).
TEST(StagingArea, OneSessionAtATimePerImage) {
  testing::TempDir tmp;
  auto staging = StagingArea::open(tmp.path());
  ASSERT_TRUE(staging) << staging.error().message();
  const Hello hello{1, 8192, 4096, "disk.img"};
  const std::string data(8192, 'a');
  {
    auto first = staging->prepare(hello);
    ASSERT_TRUE(first) << first.error().message();
    ASSERT_EQ(::pwrite(first->fd(), data.data(), data.size(), 0),
              static_cast<ssize_t>(data.size()));
    for (uint64_t id : {1, 2}) {  // the same transfer reconnecting, or another one
      Hello again = hello;
      again.transferId = id;
      auto second = staging->prepare(again);
      EXPECT_FALSE(second) << "transfer " << id << " shares the file in use";
      if (!second) {
        EXPECT_NE(second.error().message().find("another session"), std::string::npos)
            << second.error().message();
      }
    }
    ASSERT_TRUE(first->commit());
  }
  EXPECT_TRUE(contents(tmp / "disk.img") == data) << "the committed image lost its data";

  // Once the first session is gone the name may be received again, into a
  // new temporary file: the committed image stays as it is.
  auto next = staging->prepare(Hello{3, 8192, 4096, "disk.img"});
  ASSERT_TRUE(next) << next.error().message();
  EXPECT_FALSE(next->resumed());
  const std::string other(8192, 'b');
  ASSERT_EQ(::pwrite(next->fd(), other.data(), other.size(), 0),
            static_cast<ssize_t>(other.size()));
  EXPECT_TRUE(contents(tmp / "disk.img") == data) << "a later session wrote into the image";
}

}  // namespace
}  // namespace Atoll::transfer
