// The transfer engine on real sockets: two network namespaces joined by a
// veth pair, a TransferServer in B, the sender in A.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "NetnsPair.h"
#include "TestCertificates.h"
#include "TestImages.h"
#include "migrate/qemu/QmpClient.h"
#include "migrate/transfer/ImageSender.h"
#include "migrate/transfer/StreamTunnel.h"
#include "migrate/transfer/TlsChannel.h"
#include "migrate/transfer/TransferCpus.h"
#include "migrate/transfer/TransferServer.h"
#include "migrate/transfer/TunnelHandOff.h"

namespace Atoll::transfer {
namespace {

using testing::NetnsPair;
using testing::TempDir;

constexpr uint64_t kMiB = 1 << 20;

// A blocking send may return after writing part of the buffer: a signal, or
// io_uring task work queued to this thread (a ring it used being torn down
// sends it such work), interrupts the wait for socket buffer space. A correct
// sender carries on where the kernel stopped.
bool sendAll(int fd, const uint8_t* data, size_t length) {
  size_t done = 0;
  while (done < length) {
    ssize_t n = ::send(fd, data + done, length - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// The same for MSG_WAITALL, which returns early for the same reasons.
bool recvAll(int fd, void* out, size_t length) {
  size_t done = 0;
  while (done < length) {
    ssize_t n = ::recv(fd, static_cast<uint8_t*>(out) + done, length - done, MSG_WAITALL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

class TransferKernelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root for network namespaces";
    auto ring = IoRing::create(4);
    if (!ring) GTEST_SKIP() << "io_uring unavailable: " << ring.error().message();
    net_ = std::make_unique<NetnsPair>();
    if (!net_->ok()) GTEST_SKIP() << net_->error();
    ::mkdir((dir_ / "staging").c_str(), 0755);
  }

  // Starts a server inside namespace B.
  std::unique_ptr<TransferServer> startServer(ServerConfig config) {
    config.stagingDirectory = dir_ / "staging";
    config.listen = Endpoint{NetnsPair::kAddressB, 0};
    config.onSession = [this](const std::string&, const Result<ReceiveReport>& r) {
      std::lock_guard lock(mutex_);
      sessionErrors_.push_back(r ? "" : r.error().message());
      sessionCpus_.push_back(r ? r->cpu : -1);
    };
    std::unique_ptr<TransferServer> server;
    net_->inB([&] {
      auto created = TransferServer::create(config);
      if (!created) {
        ADD_FAILURE() << created.error().message();
        return;
      }
      server = std::move(*created);
    });
    if (server) server->start();
    return server;
  }

  // A server in namespace B whose tunnels end at the unix socket `destination`.
  std::unique_ptr<TransferServer> startTunnelServer(const std::string& destination) {
    ServerConfig config;
    config.tunnelDestination = destination;
    return startServer(std::move(config));
  }

  // A tunnel source toward `server`, made and started in namespace A (its
  // threads open their TCP connections from there), with `prepared`
  // connections made through the peer before it accepts; null on failure.
  std::unique_ptr<TunnelSource> startTunnelFromA(const std::string& sourceSocket,
                                                 const TransferServer& server, uint64_t tunnelId,
                                                 uint32_t prepared = 0) {
    std::unique_ptr<TunnelSource> tunnel;
    net_->inA([&] {
      auto t = TunnelSource::create(sourceSocket, Endpoint{NetnsPair::kAddressB, server.port()},
                                    tunnelId, {});
      if (!t) {
        ADD_FAILURE() << t.error().message();
        return;
      }
      if (prepared > 0) {
        if (auto made = (*t)->prepare(prepared); !made) {
          ADD_FAILURE() << made.error().message();
          return;
        }
      }
      tunnel = std::move(*t);
      tunnel->start();
    });
    return tunnel;
  }

  // Connects from namespace A (plaintext or TLS).
  Result<std::unique_ptr<Channel>> connectFromA(uint16_t port, const TlsConfig& tls = {},
                                                SocketOptions options = {}) {
    Result<std::unique_ptr<Channel>> out = Error::invalid("connect", "test", "", "not attempted");
    net_->inA([&] {
      auto fd = connectTcp(Endpoint{NetnsPair::kAddressB, port}, options.idleTimeout);
      if (!fd) {
        out = fd.error();
        return;
      }
      auto socket = SocketChannel::create(std::move(*fd), "10.231.0.2", options);
      if (!socket) {
        out = socket.error();
        return;
      }
      if (!tls.enabled()) {
        out = std::unique_ptr<Channel>(std::move(*socket));
        return;
      }
      auto context = TlsContext::create(tls, TlsContext::Role::kClient);
      if (!context) {
        out = context.error();
        return;
      }
      auto secured = TlsChannel::handshake(std::move(*socket), *context);
      if (!secured) {
        out = secured.error();
        return;
      }
      out = std::unique_ptr<Channel>(std::move(*secured));
    });
    return out;
  }

  std::vector<std::string> sessionErrors() {
    std::lock_guard lock(mutex_);
    return sessionErrors_;
  }

  bool makeCertificates() { return testing::makeTestCertificates(dir_.path()); }
  TlsConfig tlsFor(const std::string& who, const std::string& ca = "ca") {
    return {dir_ / (who + ".crt"), dir_ / (who + ".key"), dir_ / (ca + ".crt")};
  }

  TempDir dir_;
  std::unique_ptr<NetnsPair> net_;
  std::mutex mutex_;
  std::vector<std::string> sessionErrors_;
  std::vector<int> sessionCpus_;
};

Result<PreCopyReport> sendImage(ImageSender& sender, std::unique_ptr<Channel> channel,
                                uint32_t rounds = 1) {
  if (auto a = sender.attach(std::move(channel)); !a) return a.error();
  PreCopyPolicy policy;
  policy.maxRounds = rounds;
  return runPreCopy(sender, policy);
}

TEST_F(TransferKernelTest, PlaintextSparseRandomTwoGiB) {
  // 2 GiB, mostly holes, 48 random 4 MiB extents: holes are found with
  // SEEK_DATA and sent as ZeroBlock frames, data blocks travel as is.
  std::string source = dir_ / "source.img";
  testing::makeSparseRandomImage(source, 2048 * kMiB, 48, 4 * kMiB, 1);
  auto server = startServer({});
  ASSERT_TRUE(server);
  SenderOptions options;
  options.remoteName = "disk.img";
  options.transferId = 11;
  auto sender = ImageSender::open(source, options);
  ASSERT_TRUE(sender) << sender.error().message();
  auto channel = connectFromA(server->port());
  ASSERT_TRUE(channel) << channel.error().message();
  auto report = sendImage(**sender, std::move(*channel));
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_TRUE(report->verify.match);
  const RoundReport& round = report->rounds.front();
  EXPECT_EQ(round.blocksSent, 2048u) << "every block of a fresh target";
  EXPECT_LE(round.dataBytes, 192 * kMiB) << "holes carry no data";
  server->stop();
  EXPECT_TRUE(testing::filesEqual(source, dir_ / "staging/disk.img"));
  EXPECT_FALSE(testing::exists(dir_ / "staging/.disk.img.atoll-partial"));
  EXPECT_FALSE(testing::exists(dir_ / "staging/.disk.img.atoll-progress"));
}

TEST_F(TransferKernelTest, TlsMutualAuthSparseRandomTwoGiB) {
  ASSERT_TRUE(makeCertificates());
  std::string source = dir_ / "source.img";
  testing::makeSparseRandomImage(source, 2048 * kMiB, 48, 4 * kMiB, 2);
  ServerConfig config;
  config.tls = tlsFor("server");
  auto server = startServer(config);
  ASSERT_TRUE(server);
  SenderOptions options;
  options.remoteName = "secure.img";
  options.transferId = 12;
  auto sender = ImageSender::open(source, options);
  ASSERT_TRUE(sender);
  auto channel = connectFromA(server->port(), tlsFor("client"));
  ASSERT_TRUE(channel) << channel.error().message();
  EXPECT_TRUE((*channel)->encrypted());
  // Without kernel TLS the records are Atoll's own (with it, the kernel's).
  auto* tls = dynamic_cast<TlsChannel*>(channel->get());
  ASSERT_NE(tls, nullptr);
  EXPECT_TRUE(tls->atollRecords() || tls->kernelSend()) << tls->recordLayer();
  auto report = sendImage(**sender, std::move(*channel));
  ASSERT_TRUE(report) << report.error().message();
  server->stop();
  EXPECT_TRUE(testing::filesEqual(source, dir_ / "staging/secure.img"));
}

TEST_F(TransferKernelTest, IncrementalRoundSendsTheChangedFivePercent) {
  std::string source = dir_ / "source.img";
  testing::makeSparseRandomImage(source, 256 * kMiB, 64, 4 * kMiB, 3);
  testing::changeBlocks(source, kMiB, 256, 30);  // no holes: every block has data
  auto server = startServer({});
  ASSERT_TRUE(server);
  SenderOptions options;
  options.remoteName = "inc.img";
  options.transferId = 13;
  auto sender = ImageSender::open(source, options);
  ASSERT_TRUE(sender);
  auto channel = connectFromA(server->port());
  ASSERT_TRUE(channel);
  ASSERT_TRUE((*sender)->attach(std::move(*channel)));
  auto first = (*sender)->runRound(false);
  ASSERT_TRUE(first) << first.error().message();
  EXPECT_EQ(first->blocksSent, 256u);

  // 5 % of the blocks change; the hash scan finds exactly them.
  auto changed = testing::changeBlocks(source, kMiB, 13, 31);
  auto second = (*sender)->runRound(false);
  ASSERT_TRUE(second) << second.error().message();
  EXPECT_EQ(second->blocksSent, 13u);
  EXPECT_EQ(second->dirtyBytes, 13 * kMiB);
  EXPECT_LE(static_cast<double>(second->wireBytes), 1.1 * 13 * kMiB);

  // A caller that knows the dirty blocks: only they are read.
  changed = testing::changeBlocks(source, kMiB, 13, 32);
  auto third = (*sender)->runRound(true, &changed);
  ASSERT_TRUE(third);
  EXPECT_EQ(third->blocksExamined, 13u);
  EXPECT_EQ(third->blocksSent, 13u);
  auto verified = (*sender)->verify();
  ASSERT_TRUE(verified);
  EXPECT_TRUE(verified->match);
  server->stop();
  EXPECT_TRUE(testing::filesEqual(source, dir_ / "staging/inc.img"));
}

// Kernels without io_uring (or with it disabled) take the system call path;
// the same transfer must come out identical.
TEST_F(TransferKernelTest, SystemCallFallbackTransfersTheSameImage) {
  std::string source = dir_ / "source.img";
  testing::makeSparseRandomImage(source, 64 * kMiB, 8, 4 * kMiB, 17);
  ServerConfig config;
  config.socket.useIoUring = false;
  config.receiver.useIoUring = false;
  auto server = startServer(config);
  ASSERT_TRUE(server);
  SenderOptions options;
  options.remoteName = "fallback.img";
  options.useIoUring = false;
  auto sender = ImageSender::open(source, options);
  ASSERT_TRUE(sender);
  SocketOptions plain;
  plain.useIoUring = false;
  auto channel = connectFromA(server->port(), {}, plain);
  ASSERT_TRUE(channel);
  auto report = sendImage(**sender, std::move(*channel), 2);
  ASSERT_TRUE(report) << report.error().message();
  server->stop();
  EXPECT_TRUE(testing::filesEqual(source, dir_ / "staging/fallback.img"));
}

// Pipelined, each side hands its file or socket work to a thread of its own
// (Pipeline.h); over TLS and across rounds the image must come out the same.
TEST_F(TransferKernelTest, PipelinedSidesTransferTheSameImage) {
  ASSERT_TRUE(makeCertificates());
  std::string source = dir_ / "source.img";
  testing::makeSparseRandomImage(source, 256 * kMiB, 32, 4 * kMiB, 18);
  ServerConfig config;
  config.tls = tlsFor("server");
  config.receiver.pipelined = true;
  auto server = startServer(config);
  ASSERT_TRUE(server);
  SenderOptions options;
  options.remoteName = "pipelined.img";
  options.transferId = 18;
  options.pipelined = true;
  auto sender = ImageSender::open(source, options);
  ASSERT_TRUE(sender);
  auto channel = connectFromA(server->port(), tlsFor("client"));
  ASSERT_TRUE(channel) << channel.error().message();
  ASSERT_TRUE((*sender)->attach(std::move(*channel)));
  auto first = (*sender)->runRound(false);
  ASSERT_TRUE(first) << first.error().message();
  testing::changeBlocks(source, kMiB, 13, 33);
  auto second = (*sender)->runRound(true);
  ASSERT_TRUE(second) << second.error().message();
  EXPECT_EQ(second->blocksSent, 13u);
  auto verified = (*sender)->verify();
  ASSERT_TRUE(verified) << verified.error().message();
  EXPECT_TRUE(verified->match);
  server->stop();
  EXPECT_TRUE(testing::filesEqual(source, dir_ / "staging/pipelined.img"));
}

numa::CpuList allowedCpus() {
  return threadCpus().value_or({});
}

TEST_F(TransferKernelTest, EachSideRunsOnTheCpuItIsGiven) {
  numa::CpuList before = allowedCpus();
  if (before.size() < 2) GTEST_SKIP() << "needs two CPUs this process may run on";
  const unsigned senderCpu = before.front(), receiverCpu = before.back();
  auto senderCpus = TransferCpus::create({senderCpu}, "sender");
  auto receiverCpus = TransferCpus::create({receiverCpu}, "receiver");
  ASSERT_TRUE(senderCpus && receiverCpus);
  // Where the blocks were handled: the sender's calling thread and the
  // receiver's writing side, as each saw its own allowed CPUs.
  std::mutex seenMutex;
  std::set<numa::CpuList> senderSaw, receiverSaw;
  std::string source = dir_ / "source.img";
  testing::makeSparseRandomImage(source, 64 * kMiB, 8, 4 * kMiB, 23);
  ServerConfig config;
  config.receiver.cpus = &*receiverCpus;
  config.receiver.onBlock = [&](uint64_t) {
    std::lock_guard lock(seenMutex);
    receiverSaw.insert(allowedCpus());
  };
  auto server = startServer(config);
  ASSERT_TRUE(server);
  SenderOptions options;
  options.remoteName = "placed.img";
  options.cpus = &*senderCpus;
  options.onBlock = [&](uint64_t) {
    std::lock_guard lock(seenMutex);
    senderSaw.insert(allowedCpus());
  };
  auto sender = ImageSender::open(source, options);
  ASSERT_TRUE(sender);
  auto channel = connectFromA(server->port());
  ASSERT_TRUE(channel);
  auto report = sendImage(**sender, std::move(*channel), 2);
  ASSERT_TRUE(report) << report.error().message();
  server->stop();
  EXPECT_TRUE(report->verify.match);
  EXPECT_TRUE(testing::filesEqual(source, dir_ / "staging/placed.img"));
  for (const RoundReport& round : report->rounds) EXPECT_EQ(round.cpu, int(senderCpu));
  EXPECT_EQ(senderSaw, (std::set<numa::CpuList>{{senderCpu}}));
  EXPECT_EQ(receiverSaw, (std::set<numa::CpuList>{{receiverCpu}}));
  {
    std::lock_guard lock(mutex_);
    ASSERT_FALSE(sessionCpus_.empty());
    EXPECT_EQ(sessionCpus_.back(), int(receiverCpu));
  }
  EXPECT_EQ(allowedCpus(), before) << "the calling thread gets its CPUs back after each round";
  EXPECT_EQ(senderCpus->running(), std::vector<size_t>{0});
  EXPECT_EQ(receiverCpus->running(), std::vector<size_t>{0});
}

// The receiver runs in a forked child so that it can be killed outright.
pid_t forkReceiver(const std::string& netns, const std::string& staging, uint16_t port,
                   int readyFd) {
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  if (!NetnsPair::enter(netns)) ::_exit(90);
  ServerConfig config;
  config.stagingDirectory = staging;
  config.listen = Endpoint{NetnsPair::kAddressB, port};
  config.receiver.checkpointBytes = 32 * kMiB;
  auto server = TransferServer::create(config);
  if (!server) ::_exit(91);
  uint16_t bound = (*server)->port();
  (void)!::write(readyFd, &bound, sizeof bound);
  (*server)->start();
  ::pause();
  ::_exit(0);
}

TEST_F(TransferKernelTest, ReceiverKilledMidRoundResumes) {
  std::string source = dir_ / "source.img";
  testing::makeSparseRandomImage(source, 256 * kMiB, 64, 4 * kMiB, 4);
  testing::changeBlocks(source, kMiB, 256, 40);
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t child = forkReceiver(net_->nameB(), dir_ / "staging", 0, ready[1]);
  uint16_t port = 0;
  ASSERT_EQ(::read(ready[0], &port, sizeof port), static_cast<ssize_t>(sizeof port));

  SenderOptions options;
  options.remoteName = "resume.img";
  options.transferId = 14;
  std::atomic<bool> killed{false};
  options.onBlock = [&](uint64_t bytes) {
    if (bytes >= 160 * kMiB && !killed.exchange(true)) ::kill(child, SIGKILL);
  };
  auto sender = ImageSender::open(source, options);
  ASSERT_TRUE(sender);
  SocketOptions quick;
  quick.idleTimeout = std::chrono::seconds(3);
  auto channel = connectFromA(port, {}, quick);
  ASSERT_TRUE(channel);
  ASSERT_TRUE((*sender)->attach(std::move(*channel)));
  auto interrupted = (*sender)->runRound(false);
  ::waitpid(child, nullptr, 0);
  ASSERT_FALSE(interrupted) << "the receiver died mid-round";
  EXPECT_FALSE(testing::exists(dir_ / "staging/resume.img"));
  EXPECT_TRUE(testing::exists(dir_ / "staging/.resume.img.atoll-progress"));

  // A new receiver on the same staging directory resumes from its record.
  child = forkReceiver(net_->nameB(), dir_ / "staging", port, ready[1]);
  ASSERT_EQ(::read(ready[0], &port, sizeof port), static_cast<ssize_t>(sizeof port));
  channel = connectFromA(port, {}, quick);
  ASSERT_TRUE(channel);
  ASSERT_TRUE((*sender)->attach(std::move(*channel)));
  auto resumed = (*sender)->runRound(true);
  ASSERT_TRUE(resumed) << resumed.error().message();
  EXPECT_LE(resumed->dataBytes, 160 * kMiB) << "resumed instead of starting over";
  EXPECT_LT(resumed->dataBytes, 256 * kMiB);
  EXPECT_GT(resumed->dataBytes, 0u);
  auto verified = (*sender)->verify();
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  ::close(ready[0]);
  ::close(ready[1]);
  ASSERT_TRUE(verified) << verified.error().message();
  EXPECT_TRUE(verified->match);
  EXPECT_EQ(testing::fileHash(source), testing::fileHash(dir_ / "staging/resume.img"));
}

TEST_F(TransferKernelTest, CutLinkIsAClearErrorAndTargetStaysIncomplete) {
  std::string source = dir_ / "source.img";
  testing::makeSparseRandomImage(source, 256 * kMiB, 64, 4 * kMiB, 5);
  testing::changeBlocks(source, kMiB, 256, 50);
  uint64_t sourceHash = testing::fileHash(source);
  ServerConfig config;
  config.socket.idleTimeout = std::chrono::seconds(2);
  auto server = startServer(config);
  ASSERT_TRUE(server);
  TransferLimiter limiter(64 * kMiB, nullptr);  // slow enough to cut mid-round
  SenderOptions options;
  options.remoteName = "cut.img";
  options.transferId = 15;
  options.limiter = &limiter;
  std::atomic<bool> cut{false};
  options.onBlock = [&](uint64_t bytes) {
    if (bytes >= 32 * kMiB && !cut.exchange(true)) {
      EXPECT_TRUE(net_->cutLink());
    }
  };
  auto sender = ImageSender::open(source, options);
  ASSERT_TRUE(sender);
  SocketOptions quick;
  quick.idleTimeout = std::chrono::seconds(2);
  auto channel = connectFromA(server->port(), {}, quick);
  ASSERT_TRUE(channel);
  ASSERT_TRUE((*sender)->attach(std::move(*channel)));
  auto start = std::chrono::steady_clock::now();
  auto round = (*sender)->runRound(false);
  ASSERT_FALSE(round);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  std::string message = round.error().message();
  // Whichever end notices first: the sender's own idle timeout, or the
  // receiver's, which then closes its end and the sender's next send fails.
  EXPECT_TRUE(message.find("idle timeout") != std::string::npos ||
              message.find("timed out") != std::string::npos ||
              message.find("Broken pipe") != std::string::npos ||
              message.find("Connection reset") != std::string::npos)
      << message;
  server->stop();
  EXPECT_EQ(testing::fileHash(source), sourceHash) << "source untouched";
  EXPECT_FALSE(testing::exists(dir_ / "staging/cut.img"));
  EXPECT_TRUE(testing::exists(dir_ / "staging/.cut.img.atoll-progress")) << "marked incomplete";
}

TEST_F(TransferKernelTest, FullTargetDiskIsAClearErrorWithNoFinalFile) {
  std::string staging = dir_ / "staging";
  std::string source = dir_ / "source.img";
  testing::makeSparseRandomImage(source, 128 * kMiB, 32, 4 * kMiB, 6);
  testing::changeBlocks(source, kMiB, 128, 60);
  // In place and pipelined, the failed write stops the round the same way.
  for (bool pipelined : {false, true}) {
    SCOPED_TRACE(pipelined ? "pipelined" : "in place");
    if (::mount("atoll-test", staging.c_str(), "tmpfs", 0, "size=48m") != 0) {
      GTEST_SKIP() << "cannot mount a tmpfs: " << std::strerror(errno);
    }
    ServerConfig config;
    config.receiver.pipelined = pipelined;
    auto server = startServer(config);
    SenderOptions options;
    options.remoteName = "full.img";
    options.transferId = pipelined ? 26 : 16;
    options.pipelined = pipelined;
    auto sender = ImageSender::open(source, options);
    ASSERT_TRUE(sender);
    auto channel = connectFromA(server->port());
    ASSERT_TRUE(channel);
    auto report = sendImage(**sender, std::move(*channel));
    server->stop();
    bool finalExists = testing::exists(staging + "/full.img");
    ::umount2(staging.c_str(), MNT_DETACH);
    ASSERT_FALSE(report);
    EXPECT_NE(report.error().message().find("No space left on device"), std::string::npos)
        << report.error().message();
    EXPECT_FALSE(finalExists);
  }
}

TEST_F(TransferKernelTest, StagingRefusesEscapesAndSymlinks) {
  ASSERT_EQ(::symlink("/etc", (dir_ / "staging/link").c_str()), 0);
  auto server = startServer({});
  std::string source = dir_ / "small.img";
  testing::makeSparseRandomImage(source, 4 * kMiB, 1, kMiB, 7);
  for (const char* name : {"link/passwd", "link"}) {
    SenderOptions options;
    options.remoteName = name;
    auto sender = ImageSender::open(source, options);
    ASSERT_TRUE(sender);
    auto channel = connectFromA(server->port());
    ASSERT_TRUE(channel);
    auto attached = (*sender)->attach(std::move(*channel));
    ASSERT_FALSE(attached) << name;
    EXPECT_NE(attached.error().message().find("refused"), std::string::npos)
        << attached.error().message();
  }
  server->stop();
  EXPECT_FALSE(testing::exists("/etc/.passwd.atoll-partial"));
}

// The process's mapped memory (VmSize), in bytes.
uint64_t mappedBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmSize:", 0) == 0) return std::stoull(line.substr(7)) * 1024;
  }
  return 0;
}

// Every connection is served on a thread of its own. One that has finished
// keeps its stack until joined, so a receiver that joined them only when it
// stops would grow with every connection a peer ever made.
TEST_F(TransferKernelTest, FinishedSessionsDoNotPileUp) {
  auto server = startServer({});
  ASSERT_TRUE(server);
  pthread_attr_t attributes;
  ASSERT_EQ(::pthread_getattr_default_np(&attributes), 0);
  size_t stack = 0;
  ::pthread_attr_getstacksize(&attributes, &stack);
  ::pthread_attr_destroy(&attributes);
  size_t sessions = 0;
  auto connectAndClose = [&] {
    {
      auto channel = connectFromA(server->port());
      ASSERT_TRUE(channel) << channel.error().message();
    }  // closed before saying anything: the session ends at once
    ++sessions;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (sessionErrors().size() < sessions && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    ASSERT_EQ(sessionErrors().size(), sessions);
  };
  // The first ones may leave what stays anyway (malloc arenas, cached stacks).
  for (int i = 0; i < 8; ++i) ASSERT_NO_FATAL_FAILURE(connectAndClose());
  constexpr size_t kConnections = 48;
  uint64_t before = mappedBytes();
  for (size_t i = 0; i < kConnections; ++i) ASSERT_NO_FATAL_FAILURE(connectAndClose());
  uint64_t after = mappedBytes();
  server->stop();
  EXPECT_LT(after, before + kConnections / 4 * stack)
      << (after - before) / stack << " thread stacks more after " << kConnections
      << " finished sessions";
}

// stop() wakes the acceptor through an eventfd; a server made without one
// could never be stopped, so creating it fails instead.
TEST_F(TransferKernelTest, CreateFailsWithoutTheStopSignal) {
  ServerConfig config;
  config.stagingDirectory = dir_ / "staging";
  config.listen = Endpoint{"127.0.0.1", 0};
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  // Every descriptor below the limit taken but two: the staging directory
  // and the listener get them, the eventfd none.
  int highest = ::fcntl(0, F_DUPFD_CLOEXEC, 0);
  ASSERT_GE(highest, 0);
  ::close(highest);
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    highest = std::max(highest, std::stoi(entry.path().filename().string()));
  }
  rlimit limited = saved;
  limited.rlim_cur = static_cast<rlim_t>(highest) + 32;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &limited), 0);
  std::vector<int> fillers;
  for (int fd; (fd = ::fcntl(0, F_DUPFD_CLOEXEC, 0)) >= 0;) fillers.push_back(fd);
  for (int i = 0; i < 2 && !fillers.empty(); ++i) {
    ::close(fillers.back());
    fillers.pop_back();
  }
  auto server = TransferServer::create(config);
  bool created = static_cast<bool>(server);
  std::string message = created ? "" : server.error().message();
  if (server) server->reset();  // frees its descriptors before the limit returns
  for (int fd : fillers) ::close(fd);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  EXPECT_FALSE(created) << "created without a way to stop it";
  EXPECT_NE(message.find("eventfd"), std::string::npos) << message;
}

// Reads the first `length` bytes of a file or device.
std::vector<char> headOf(const std::string& path, size_t length) {
  std::vector<char> bytes(length);
  std::ifstream in(path, std::ios::binary);
  in.read(bytes.data(), static_cast<std::streamsize>(length));
  bytes.resize(static_cast<size_t>(in.gcount()));
  return bytes;
}

TEST_F(TransferKernelTest, DevicesOnlyFromTheAllowList) {
  std::string backing = dir_ / "device.backing";
  ASSERT_EQ(testing::shell("truncate -s 64M " + backing), 0);
  std::string listing = dir_ / "loop.name";
  if (testing::shell("losetup -f --show " + backing + " > " + listing + " 2>/dev/null") != 0) {
    GTEST_SKIP() << "no loop device to stand in for a block device (losetup failed)";
  }
  std::string device;
  std::ifstream(listing) >> device;
  ASSERT_FALSE(device.empty());
  struct Detach {
    std::string device;
    ~Detach() { testing::shell("losetup -d " + device); }
  } detach{device};

  std::string plainFile = dir_ / "not-a-device";
  ASSERT_EQ(testing::shell("truncate -s 64M " + plainFile), 0);
  std::string link = dir_ / "device-link";
  ASSERT_EQ(::symlink(device.c_str(), link.c_str()), 0);
  ServerConfig config;
  config.allowedDevices = {device, plainFile, link};
  auto server = startServer(config);
  ASSERT_TRUE(server);

  std::string source = dir_ / "device.img";
  testing::makeSparseRandomImage(source, 48 * kMiB, 6, 4 * kMiB, 21);
  auto send = [&](const std::string& name) -> Result<PreCopyReport> {
    SenderOptions options;
    options.remoteName = name;
    options.transferId = 21;
    auto sender = ImageSender::open(source, options);
    if (!sender) return sender.error();
    auto channel = connectFromA(server->port());
    if (!channel) return channel.error();
    return sendImage(**sender, std::move(*channel), 2);
  };

  auto written = send(device);
  ASSERT_TRUE(written) << written.error().message();
  EXPECT_TRUE(written->verify.match);
  ::sync();
  EXPECT_EQ(headOf(device, 48 * kMiB), headOf(source, 48 * kMiB)) << "device holds the image";
  EXPECT_FALSE(testing::exists(dir_ / "staging/" + device.substr(device.rfind('/') + 1)));

  // Not on the list, on the list but a symlink, on the list but no device.
  for (const std::string& name : {std::string("/dev/null"), link, plainFile}) {
    auto refused = send(name);
    ASSERT_FALSE(refused) << name;
    EXPECT_NE(refused.error().message().find("refused"), std::string::npos)
        << name << ": " << refused.error().message();
  }
  std::vector<char> zeros(48 * kMiB, 0);
  EXPECT_EQ(headOf(plainFile, 48 * kMiB), zeros) << "a refused target stays untouched";
  server->stop();
}

TEST_F(TransferKernelTest, HostCapIsSharedFairlyAmongConcurrentTransfers) {
  constexpr uint64_t kCap = 24 * kMiB;  // far below what the link carries here
  HostBandwidth host(kCap);
  ServerConfig config;
  config.hostBandwidth = &host;
  auto server = startServer(config);
  ASSERT_TRUE(server);
  std::string source = dir_ / "fair.img";
  testing::makeSparseRandomImage(source, 48 * kMiB, 1, 48 * kMiB, 22);
  struct Run {
    std::unique_ptr<ImageSender> sender;
    double seconds = 0;
    std::string error;
  };
  Run runs[2];
  for (int i = 0; i < 2; ++i) {
    SenderOptions options;
    options.remoteName = "fair" + std::to_string(i) + ".img";
    options.transferId = 30 + i;
    auto sender = ImageSender::open(source, options);
    ASSERT_TRUE(sender);
    auto channel = connectFromA(server->port());
    ASSERT_TRUE(channel);
    ASSERT_TRUE((*sender)->attach(std::move(*channel)));
    runs[i].sender = std::move(*sender);
  }
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (Run& run : runs) {
    threads.emplace_back([&run, start] {
      auto round = run.sender->runRound(true);
      run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (!round) {
        run.error = round.error().message();
        return;
      }
      auto verified = run.sender->verify();
      if (!verified || !verified->match) run.error = "verification failed";
    });
  }
  for (auto& t : threads) t.join();
  server->stop();
  ASSERT_TRUE(runs[0].error.empty()) << runs[0].error;
  ASSERT_TRUE(runs[1].error.empty()) << runs[1].error;
  // 96 MiB at 24 MiB/s: 4 s when the cap holds; equal shares finish together.
  double ideal = 2.0 * 48 * kMiB / kCap;
  double last = std::max(runs[0].seconds, runs[1].seconds);
  double first = std::min(runs[0].seconds, runs[1].seconds);
  EXPECT_GT(last, 0.8 * ideal) << "the host-wide cap was exceeded";
  EXPECT_GT(first / last, 0.75) << "unequal shares: " << runs[0].seconds << " s vs "
                                << runs[1].seconds << " s";
}

TEST_F(TransferKernelTest, HostCapChangesWhileATransferRuns) {
  HostBandwidth host(8 * kMiB);
  ServerConfig config;
  config.hostBandwidth = &host;
  std::atomic<uint64_t> receivedAtChange{0};
  std::atomic<uint64_t> received{0};
  config.receiver.onBlock = [&](uint64_t bytes) { received = bytes; };
  auto server = startServer(config);
  ASSERT_TRUE(server);
  std::string source = dir_ / "adjust.img";
  testing::makeSparseRandomImage(source, 64 * kMiB, 1, 64 * kMiB, 23);
  SenderOptions options;
  options.remoteName = "adjust.img";
  options.transferId = 40;
  auto sender = ImageSender::open(source, options);
  ASSERT_TRUE(sender);
  auto channel = connectFromA(server->port());
  ASSERT_TRUE(channel);
  ASSERT_TRUE((*sender)->attach(std::move(*channel)));
  auto start = std::chrono::steady_clock::now();
  std::thread planner([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    receivedAtChange = received.load();
    host.setLimit(128 * kMiB);
  });
  auto round = (*sender)->runRound(true);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  planner.join();
  ASSERT_TRUE(round) << round.error().message();
  auto verified = (*sender)->verify();
  server->stop();
  ASSERT_TRUE(verified && verified->match);
  // At 8 MiB/s about 12 MiB in the first 1.5 s; the 64 MiB would take 8 s
  // without the change, about 1.9 s with it.
  EXPECT_LE(receivedAtChange.load(), 16 * kMiB) << "the first limit did not hold";
  EXPECT_GE(receivedAtChange.load(), 4 * kMiB);
  EXPECT_LT(seconds, 5.0) << "the raised limit was not applied to the running transfer";
}

TEST_F(TransferKernelTest, KernelTlsTakesTheRecordLayerWhereOffered) {
  if (!kernelTlsAvailable()) {
    GTEST_SKIP() << "no kernel TLS on this kernel: \"tls\" is missing from "
                    "/proc/sys/net/ipv4/tcp_available_ulp (CONFIG_TLS off)";
  }
  ASSERT_TRUE(makeCertificates());
  ServerConfig config;
  config.tls = tlsFor("server");
  auto server = startServer(config);
  ASSERT_TRUE(server);
  std::string source = dir_ / "ktls.img";
  testing::makeSparseRandomImage(source, 64 * kMiB, 4, 8 * kMiB, 24);
  SenderOptions options;
  options.remoteName = "ktls.img";
  options.transferId = 50;
  auto sender = ImageSender::open(source, options);
  ASSERT_TRUE(sender);
  auto channel = connectFromA(server->port(), tlsFor("client"));
  ASSERT_TRUE(channel) << channel.error().message();
  auto* tls = dynamic_cast<TlsChannel*>(channel->get());
  ASSERT_NE(tls, nullptr);
  EXPECT_TRUE(tls->kernelSend()) << tls->recordLayer();
  auto report = sendImage(**sender, std::move(*channel));
  server->stop();
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_TRUE(report->verify.match);
  EXPECT_TRUE(testing::filesEqual(source, dir_ / "staging/ktls.img"));
}

TEST_F(TransferKernelTest, TlsRefusesPeersWithoutValidCertificates) {
  ASSERT_TRUE(makeCertificates());
  ServerConfig config;
  config.tls = tlsFor("server");
  auto server = startServer(config);
  ASSERT_TRUE(server);
  std::string source = dir_ / "small.img";
  testing::makeSparseRandomImage(source, 4 * kMiB, 1, kMiB, 8);

  // A client certificate from another CA.
  auto intruder = connectFromA(server->port(), tlsFor("intruder", "ca"));
  if (intruder) {
    SenderOptions options;
    options.remoteName = "x.img";
    auto sender = ImageSender::open(source, options);
    ASSERT_TRUE(sender);
    EXPECT_FALSE((*sender)->attach(std::move(*intruder)));
  }
  // The client trusts a different CA than the one that signed the server.
  auto wrongCa = connectFromA(server->port(), tlsFor("client", "rogue"));
  ASSERT_FALSE(wrongCa);
  EXPECT_NE(wrongCa.error().message().find("certificate"), std::string::npos)
      << wrongCa.error().message();
  // No certificate at all (openssl s_client without -cert).
  testing::shell("echo hello | timeout 10 ip netns exec " + net_->nameA() +
                 " openssl s_client -tls1_3 -quiet -connect 10.231.0.2:" +
                 std::to_string(server->port()) + " >/dev/null 2>&1");
  // A plaintext client.
  auto plain = connectFromA(server->port());
  ASSERT_TRUE(plain);
  (void)(*plain)->sendFrame(encode(Hello{1, kMiB, kMiB, "plain.img"}));
  server->stop();
  auto errors = sessionErrors();
  ASSERT_GE(errors.size(), 3u);
  for (const auto& e : errors) EXPECT_FALSE(e.empty()) << "every session was refused";
  EXPECT_FALSE(testing::exists(dir_ / "staging/x.img"));
  EXPECT_FALSE(testing::exists(dir_ / "staging/.x.img.atoll-partial"));
}

// A relay in namespace B between the client and the server that flips one
// byte of the client's stream after the handshake.
TEST_F(TransferKernelTest, TlsRefusesATamperedRecord) {
  ASSERT_TRUE(makeCertificates());
  ServerConfig config;
  config.tls = tlsFor("server");
  auto server = startServer(config);
  ASSERT_TRUE(server);
  UniqueFd proxyListener;
  net_->inB([&] {
    auto l = listenTcp(Endpoint{NetnsPair::kAddressB, 0});
    ASSERT_TRUE(l);
    proxyListener = std::move(*l);
  });
  uint16_t proxyPort = *boundPort(proxyListener.get());
  std::thread proxy([&] {
    auto client = acceptConnection(proxyListener.get(), nullptr, std::chrono::seconds(5));
    if (!client) return;
    UniqueFd upstream;
    NetnsPair::enter(net_->nameB());
    auto u = connectTcp(Endpoint{NetnsPair::kAddressB, server->port()}, std::chrono::seconds(5));
    if (!u) return;
    upstream = std::move(*u);
    std::thread back([&] {
      uint8_t buffer[65536];
      ssize_t n;
      while ((n = ::recv(upstream.get(), buffer, sizeof buffer, 0)) > 0) {
        if (::send(client->get(), buffer, static_cast<size_t>(n), MSG_NOSIGNAL) != n) break;
      }
      ::shutdown(client->get(), SHUT_WR);
    });
    uint8_t buffer[65536];
    uint64_t total = 0;
    ssize_t n;
    bool flipped = false;
    while ((n = ::recv(client->get(), buffer, sizeof buffer, 0)) > 0) {
      if (!flipped && total + static_cast<uint64_t>(n) > 200000) {
        buffer[200000 - total < static_cast<uint64_t>(n) ? 200000 - total : 0] ^= 0x40;
        flipped = true;
      }
      total += static_cast<uint64_t>(n);
      if (::send(upstream.get(), buffer, static_cast<size_t>(n), MSG_NOSIGNAL) != n) break;
    }
    ::shutdown(upstream.get(), SHUT_WR);
    back.join();
  });
  std::string source = dir_ / "tamper.img";
  testing::makeSparseRandomImage(source, 16 * kMiB, 4, 4 * kMiB, 9);
  testing::changeBlocks(source, kMiB, 16, 90);
  SenderOptions options;
  options.remoteName = "tamper.img";
  auto sender = ImageSender::open(source, options);
  ASSERT_TRUE(sender);
  SocketOptions quick;
  quick.idleTimeout = std::chrono::seconds(5);
  auto channel = connectFromA(proxyPort, tlsFor("client"), quick);
  ASSERT_TRUE(channel) << channel.error().message();
  auto report = sendImage(**sender, std::move(*channel));
  EXPECT_FALSE(report);
  sender->reset();  // closes the connection, which ends the relay
  proxy.join();
  server->stop();
  auto errors = sessionErrors();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("bad record mac"), std::string::npos) << errors[0];
  EXPECT_FALSE(testing::exists(dir_ / "staging/tamper.img"));
}

// Stand-in for a destination QEMU listening on `-incoming unix:PATH`: accepts
// `count` connections, records the order in which they arrived (each one's
// first 8 bytes name its stream), counts what each one carries and answers
// with the count once its stream ended.
class DestinationStandIn {
 public:
  DestinationStandIn(const std::string& path, int count) : listener_(listenUnix(path)) {
    if (!listener_) return;
    thread_ = std::thread([this, count] {
      std::vector<std::thread> workers;
      for (int i = 0; i < count; ++i) {
        auto c = acceptConnection((*listener_).get(), nullptr, std::chrono::seconds(5));
        if (!c) break;
        ++accepted_;
        workers.emplace_back([this, i, fd = std::make_shared<UniqueFd>(std::move(*c))] {
          std::vector<uint8_t> buffer(1 << 20);
          uint64_t total = 0, name = 0;
          ssize_t n;
          while ((n = ::recv(fd->get(), buffer.data(), buffer.size(), 0)) > 0) {
            if (total == 0 && n >= 8) std::memcpy(&name, buffer.data(), sizeof name);
            total += static_cast<uint64_t>(n);
          }
          {
            std::lock_guard lock(mutex_);
            names_[i] = name;
            bytes_[i] = total;
          }
          (void)!::send(fd->get(), &total, sizeof total, MSG_NOSIGNAL);
        });
      }
      for (auto& w : workers) w.join();
    });
  }
  ~DestinationStandIn() { join(); }
  bool listening() const { return static_cast<bool>(listener_); }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  // Connections accepted so far, whether or not their streams ended.
  int accepted() const { return accepted_; }
  // A connection the peer made sits in the listen backlog until this
  // stand-in's thread accepts it: waits (bounded) until `count` were.
  int acceptedWithin(int count, std::chrono::milliseconds limit) const {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (accepted_ < count && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return accepted_;
  }
  // Per accepted connection, in accept order: the stream's name and bytes.
  std::map<int, uint64_t> names() {
    std::lock_guard lock(mutex_);
    return names_;
  }
  std::map<int, uint64_t> bytes() {
    std::lock_guard lock(mutex_);
    return bytes_;
  }

 private:
  Result<UniqueFd> listener_;
  std::thread thread_;
  std::atomic<int> accepted_{0};
  std::mutex mutex_;
  std::map<int, uint64_t> names_, bytes_;
};

// Sends `bytes` whose first 8 name the stream, half-closes and returns what
// the far end answered (its byte count), 0 on any failure.
uint64_t sendNamedStream(const std::string& socketPath, uint64_t name, uint64_t bytes) {
  auto c = connectUnix(socketPath);
  if (!c) return 0;
  std::vector<uint8_t> buffer(1 << 20, 0x5a);
  std::memcpy(buffer.data(), &name, sizeof name);
  for (uint64_t sent = 0; sent < bytes; sent += buffer.size()) {
    if (!sendAll(c->get(), buffer.data(), buffer.size())) return 0;
  }
  ::shutdown(c->get(), SHUT_WR);
  uint64_t echoed = 0;
  if (!recvAll(c->get(), &echoed, sizeof echoed)) return 0;
  return echoed;
}

TEST_F(TransferKernelTest, TunnelCarriesSeveralStreamsBothWays) {
  std::string destination = dir_ / "dest.sock", sourceSocket = dir_ / "src.sock";
  constexpr int kStreams = 3;
  constexpr uint64_t kBytes = 64 * kMiB;
  DestinationStandIn sink(destination, kStreams);
  ASSERT_TRUE(sink.listening());
  auto server = startTunnelServer(destination);
  ASSERT_TRUE(server);
  auto tunnel = startTunnelFromA(sourceSocket, *server, 1);
  ASSERT_TRUE(tunnel);
  // All at once, as QEMU's multifd channels stream side by side.
  std::vector<std::future<uint64_t>> answers;
  for (uint64_t name = 1; name <= kStreams; ++name) {
    answers.push_back(std::async(
        std::launch::async, [&, name] { return sendNamedStream(sourceSocket, name, kBytes); }));
  }
  for (auto& a : answers) EXPECT_EQ(a.get(), kBytes);
  sink.join();
  tunnel->stop();
  server->stop();
  EXPECT_EQ(tunnel->stats().connections.load(), static_cast<uint32_t>(kStreams));
  EXPECT_EQ(tunnel->stats().bytesToPeer.load(), kStreams * kBytes);
  EXPECT_EQ(tunnel->stats().bytesFromPeer.load(), kStreams * sizeof(uint64_t));
  EXPECT_EQ(tunnel->lastError(), "");
  for (const auto& e : sessionErrors()) EXPECT_EQ(e, "");
}

TEST_F(TransferKernelTest, PreparedTunnelReachesTheDestinationBeforeQemuConnects) {
  std::string destination = dir_ / "dest.sock", sourceSocket = dir_ / "src.sock";
  constexpr int kStreams = 3;  // two prepared, one opened when it connects
  constexpr uint64_t kBytes = 16 * kMiB;
  DestinationStandIn sink(destination, kStreams);
  ASSERT_TRUE(sink.listening());
  auto server = startTunnelServer(destination);
  ASSERT_TRUE(server);
  auto tunnel = startTunnelFromA(sourceSocket, *server, 7, 2);
  ASSERT_TRUE(tunnel);
  // Acknowledged means the peer's connection to the destination is made.
  EXPECT_EQ(sink.acceptedWithin(2, std::chrono::seconds(5)), 2);
  EXPECT_EQ(tunnel->preparedLeft(), 2u);
  EXPECT_EQ(tunnel->stats().connections.load(), 0u);
  // One after the other, as QEMU opens its main channel before the others:
  // the destination must see them in the same order.
  for (uint64_t name = 1; name <= kStreams; ++name) {
    EXPECT_EQ(sendNamedStream(sourceSocket, name, kBytes), kBytes) << "stream " << name;
  }
  sink.join();
  tunnel->stop();
  server->stop();
  EXPECT_EQ(tunnel->preparedLeft(), 0u);
  auto names = sink.names();
  auto bytes = sink.bytes();
  for (int i = 0; i < kStreams; ++i) {
    EXPECT_EQ(names[i], static_cast<uint64_t>(i + 1))
        << "connection " << i << " at the destination";
    EXPECT_EQ(bytes[i], kBytes) << "connection " << i << " at the destination";
  }
  EXPECT_EQ(tunnel->stats().connections.load(), static_cast<uint32_t>(kStreams));
  EXPECT_EQ(tunnel->stats().open.load(), 0u);
  EXPECT_EQ(tunnel->stats().bytesToPeer.load(), kStreams * kBytes);
  EXPECT_EQ(tunnel->stats().bytesFromPeer.load(), kStreams * sizeof(uint64_t));
  EXPECT_EQ(tunnel->lastError(), "");
  // The first connection's moments come in the order the preparation promises.
  const TunnelTimeline& t = tunnel->timeline();
  EXPECT_GT(t.peerConnectedUs.load(), 0);
  EXPECT_LE(t.peerConnectedUs.load(), t.peerAckedUs.load());
  EXPECT_LE(t.peerAckedUs.load(), t.localAcceptedUs.load());
  EXPECT_LE(t.localAcceptedUs.load(), t.firstByteUs.load());
  EXPECT_LE(t.firstByteUs.load(), t.lastByteUs.load());
  EXPECT_LE(t.lastByteUs.load(), t.closedUs.load());
  for (const auto& e : sessionErrors()) EXPECT_EQ(e, "");
}

TEST_F(TransferKernelTest, UnusedPreparedTunnelEndsTheDestinationsStream) {
  std::string destination = dir_ / "dest.sock", sourceSocket = dir_ / "src.sock";
  DestinationStandIn sink(destination, 1);
  ASSERT_TRUE(sink.listening());
  auto server = startTunnelServer(destination);
  ASSERT_TRUE(server);
  auto tunnel = startTunnelFromA(sourceSocket, *server, 8, 1);
  ASSERT_TRUE(tunnel);
  EXPECT_EQ(sink.acceptedWithin(1, std::chrono::seconds(5)), 1);
  tunnel->stop();  // QEMU never connected
  // The destination sees the end of an empty stream (its worker ends), not a
  // connection left open: join() would otherwise wait for ever, so it runs on
  // a thread with a deadline.
  auto ended = std::async(std::launch::async, [&] { sink.join(); });
  ASSERT_EQ(ended.wait_for(std::chrono::seconds(10)), std::future_status::ready)
      << "the destination's connection stayed open after the tunnel stopped";
  EXPECT_EQ(sink.bytes()[0], 0u);
  server->stop();
  EXPECT_EQ(tunnel->stats().connections.load(), 0u);
  EXPECT_EQ(tunnel->lastError(), "");
  for (const auto& e : sessionErrors()) EXPECT_EQ(e, "");
}

TEST_F(TransferKernelTest, TunnelOutlivesQemuClosingBeforeTheAnswer) {
  // The destination answers after the stream ends; by then the source QEMU
  // has gone. Passing that answer on writes into a socket whose peer closed:
  // the relay reports the broken pipe instead of the process dying of SIGPIPE.
  std::string destination = dir_ / "dest.sock", sourceSocket = dir_ / "src.sock";
  DestinationStandIn sink(destination, 1);
  ASSERT_TRUE(sink.listening());
  auto server = startTunnelServer(destination);
  ASSERT_TRUE(server);
  auto tunnel = startTunnelFromA(sourceSocket, *server, 10);
  ASSERT_TRUE(tunnel);
  {
    auto c = connectUnix(sourceSocket);
    ASSERT_TRUE(c) << c.error().message();
    std::vector<uint8_t> buffer(kMiB, 0x5a);
    ASSERT_TRUE(sendAll(c->get(), buffer.data(), buffer.size()));
  }  // closed without waiting for the answer
  sink.join();
  EXPECT_EQ(sink.bytes()[0], kMiB);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (tunnel->stats().open.load() != 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  tunnel->stop();
  server->stop();
  EXPECT_EQ(tunnel->stats().open.load(), 0u);
  EXPECT_EQ(tunnel->stats().bytesToPeer.load(), kMiB);
  EXPECT_NE(tunnel->lastError().find("errno " + std::to_string(EPIPE)), std::string::npos)
      << tunnel->lastError();
}

TEST_F(TransferKernelTest, PreparingATunnelToAMissingDestinationNamesIt) {
  std::string destination = dir_ / "nobody-listens.sock", sourceSocket = dir_ / "src.sock";
  auto server = startTunnelServer(destination);
  ASSERT_TRUE(server);
  net_->inA([&] {
    auto t =
        TunnelSource::create(sourceSocket, Endpoint{NetnsPair::kAddressB, server->port()}, 9, {});
    ASSERT_TRUE(t) << t.error().message();
    auto prepared = (*t)->prepare(1);
    ASSERT_FALSE(prepared);
    EXPECT_NE(prepared.error().message().find(destination), std::string::npos)
        << prepared.error().message();
    EXPECT_EQ((*t)->preparedLeft(), 0u);
  });
  server->stop();
}

TEST_F(TransferKernelTest, HandOffIsNotOfferedWithoutADestinationQmpSocket) {
  // A relay-only server: the source learns that hand-off is not offered (and
  // may relay instead), rather than meeting an error.
  auto server = startTunnelServer(dir_ / "dest.sock");
  ASSERT_TRUE(server);
  net_->inA([&] {
    auto attempt = HandOffSource::prepare(Endpoint{NetnsPair::kAddressB, server->port()}, 11, {});
    ASSERT_TRUE(attempt) << attempt.error().message();
    EXPECT_EQ(attempt->source, nullptr);
    EXPECT_NE(attempt->notOffered.find("no destination QMP socket"), std::string::npos)
        << attempt->notOffered;
  });
  server->stop();
  auto errors = sessionErrors();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("no destination QMP socket"), std::string::npos) << errors[0];
}

TEST_F(TransferKernelTest, HandOffIsNotOfferedOverTls) {
  ASSERT_TRUE(makeCertificates());
  // The QMP socket configured is one this test listens on: a refused
  // hand-off must not even connect to the destination QEMU's monitor.
  std::string qmpPath = dir_ / "destination.qmp";
  auto monitor = listenUnix(qmpPath);
  ASSERT_TRUE(monitor) << monitor.error().message();
  ServerConfig config;
  config.tls = tlsFor("server");
  config.tunnelDestinationQmp = qmpPath;
  auto server = startServer(std::move(config));
  ASSERT_TRUE(server);
  auto channel = connectFromA(server->port(), tlsFor("client"));
  ASSERT_TRUE(channel) << channel.error().message();
  ASSERT_TRUE((*channel)->sendFrame(encode(TunnelHandOff{12, 0})));
  auto answer = (*channel)->recvFrame();
  ASSERT_TRUE(answer) << answer.error().message();
  ASSERT_EQ(answer->header.type, MessageType::kErrorReport);
  auto report = decodeErrorReport(answer->payload);
  ASSERT_TRUE(report) << report.error().message();
  EXPECT_EQ(report->code, kTunnelErrorHandOffNotOffered);
  EXPECT_NE(report->message.find("plaintext"), std::string::npos) << report->message;
  server->stop();
  pollfd p{monitor->get(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 0), 0) << "the refused hand-off connected to the destination's QMP";
}

TEST_F(TransferKernelTest, HandOffToAMissingDestinationQmpSocketNamesIt) {
  // Offered but failing: an error naming the socket, not a silent relay.
  std::string qmpPath = dir_ / "nobody.qmp";
  ServerConfig config;
  config.tunnelDestinationQmp = qmpPath;
  auto server = startServer(std::move(config));
  ASSERT_TRUE(server);
  net_->inA([&] {
    auto attempt = HandOffSource::prepare(Endpoint{NetnsPair::kAddressB, server->port()}, 13, {});
    ASSERT_FALSE(attempt);
    EXPECT_NE(attempt.error().message().find(qmpPath), std::string::npos)
        << attempt.error().message();
  });
  server->stop();
}

TEST_F(TransferKernelTest, RelayRequestToAHandOffOnlyServerSaysSo) {
  ServerConfig config;
  config.tunnelDestinationQmp = dir_ / "destination.qmp";
  auto server = startServer(std::move(config));
  ASSERT_TRUE(server);
  net_->inA([&] {
    auto t = TunnelSource::create(dir_ / "src.sock", Endpoint{NetnsPair::kAddressB, server->port()},
                                  14, {});
    ASSERT_TRUE(t) << t.error().message();
    auto prepared = (*t)->prepare(1);
    ASSERT_FALSE(prepared);
    EXPECT_NE(prepared.error().message().find("relays none"), std::string::npos)
        << prepared.error().message();
  });
  server->stop();
}

TEST_F(TransferKernelTest, MalformedTunnelRequestsAreAnsweredWithAProtocolError) {
  // The peer learns why it was refused instead of meeting a closed
  // connection, whichever tunnel request it got wrong.
  auto server = startTunnelServer(dir_ / "dest.sock");
  ASSERT_TRUE(server);
  for (MessageType type : {MessageType::kTunnelOpen, MessageType::kTunnelHandOff}) {
    SCOPED_TRACE(messageTypeName(type));
    auto channel = connectFromA(server->port());
    ASSERT_TRUE(channel) << channel.error().message();
    // One byte more than the tunnel id and channel number the request holds.
    std::vector<uint8_t> payload(13, 0);
    std::vector<uint8_t> frame(kFrameHeaderSize);
    encodeHeader({type, static_cast<uint32_t>(payload.size()), payloadChecksum(payload)},
                 frame.data());
    frame.insert(frame.end(), payload.begin(), payload.end());
    ASSERT_TRUE((*channel)->sendFrame(frame));
    auto answer = (*channel)->recvFrame();
    ASSERT_TRUE(answer) << answer.error().message();
    ASSERT_EQ(answer->header.type, MessageType::kErrorReport);
    auto report = decodeErrorReport(answer->payload);
    ASSERT_TRUE(report) << report.error().message();
    EXPECT_EQ(report->code, kTunnelErrorProtocol);
    std::string wrong = std::string(messageTypeName(type)) + " payload has the wrong length";
    EXPECT_NE(report->message.find(wrong), std::string::npos) << report->message;
    EXPECT_NE(report->message.find("13"), std::string::npos) << report->message;
  }
  server->stop();
  auto errors = sessionErrors();
  ASSERT_EQ(errors.size(), 2u);
  // The sessions report in the order they end, which need not be the order
  // they began.
  for (const char* request : {"TunnelOpen payload", "TunnelHandOff payload"}) {
    EXPECT_EQ(std::count_if(errors.begin(), errors.end(),
                            [&](const std::string& e) { return e.find(request) != e.npos; }),
              1)
        << request;
  }
}

// Stand-in for a QEMU's QMP monitor, enough for a hand-off: answers each
// command with an empty return, keeps the descriptor `getfd` passes (it comes
// with the command's first byte) and on `migrate` or `migrate-incoming` hands
// it to `onMigrate`, which runs on a thread of its own as QEMU's migration
// does.
class QmpStandIn {
 public:
  QmpStandIn(const std::string& path, std::function<void(UniqueFd)> onMigrate)
      : listener_(listenUnix(path)), onMigrate_(std::move(onMigrate)) {
    if (listener_) thread_ = std::thread([this] { serve(); });
  }
  ~QmpStandIn() {
    // Wakes an accept that no client will answer (a test that failed early).
    if (listener_) ::shutdown(listener_->get(), SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    waitForMigration();
  }
  bool listening() const { return static_cast<bool>(listener_); }
  // Until `onMigrate` returned.
  void waitForMigration() {
    std::unique_lock lock(mutex_);
    migrationStarted_.wait(lock, [&] { return migration_.joinable() || served_; });
    if (migration_.joinable()) migration_.join();
  }

 private:
  void serve() {
    serveClient();
    std::lock_guard lock(mutex_);
    served_ = true;
    migrationStarted_.notify_all();
  }
  void serveClient() {
    auto client = acceptConnection(listener_->get(), nullptr, std::chrono::seconds(5));
    if (!client) return;
    int fd = client->get();
    auto answer = [fd](const std::string& line) {
      (void)sendAll(fd, reinterpret_cast<const uint8_t*>(line.data()), line.size());
    };
    answer("{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n");
    std::string buffer;
    UniqueFd passed;
    for (;;) {
      char chunk[4096];
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
      iovec data{chunk, sizeof chunk};
      msghdr message{};
      message.msg_iov = &data;
      message.msg_iovlen = 1;
      message.msg_control = control;
      message.msg_controllen = sizeof control;
      ssize_t n = ::recvmsg(fd, &message, MSG_CMSG_CLOEXEC);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // the client closed its QMP connection
      for (cmsghdr* c = CMSG_FIRSTHDR(&message); c != nullptr; c = CMSG_NXTHDR(&message, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
          int received = -1;
          std::memcpy(&received, CMSG_DATA(c), sizeof received);
          passed = UniqueFd(received);
        }
      }
      buffer.append(chunk, static_cast<size_t>(n));
      for (size_t end; (end = buffer.find('\n')) != std::string::npos;) {
        auto command = nlohmann::json::parse(buffer.substr(0, end), nullptr, false);
        buffer.erase(0, end + 1);
        std::string name = command.is_object() ? command.value("execute", "") : "";
        if ((name == "migrate" || name == "migrate-incoming") && passed.valid()) {
          std::lock_guard lock(mutex_);
          migration_ =
              std::thread([this, connection = std::make_shared<UniqueFd>(std::move(passed))] {
                onMigrate_(std::move(*connection));
              });
          migrationStarted_.notify_all();
        }
        answer("{\"return\": {}}\r\n");
      }
    }
  }

  Result<UniqueFd> listener_;
  std::function<void(UniqueFd)> onMigrate_;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable migrationStarted_;
  std::thread migration_;
  bool served_ = false;
};

// A stalled peer must not hang a stand-in's thread for ever.
void limitReceiveWait(int fd) {
  timeval limit{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
}

TEST_F(TransferKernelTest, HandOffCountsTheStreamWithoutEitherSidesFin) {
  // The source QEMU sends the stream and shuts the socket down (as QEMU does
  // when a migration fails or is cancelled); the destination reads it to its
  // end and closes. Both FINs take sequence space, which TCP_INFO counts:
  // neither is a byte of the stream.
  constexpr uint64_t kBytes = 8 * kMiB;
  std::string sourceQmp = dir_ / "source.qmp", destinationQmp = dir_ / "destination.qmp";
  std::atomic<uint64_t> arrived{0};
  QmpStandIn destination(destinationQmp, [&](UniqueFd connection) {
    limitReceiveWait(connection.get());
    std::vector<uint8_t> buffer(kMiB);
    uint64_t total = 0;
    ssize_t n;
    while ((n = ::recv(connection.get(), buffer.data(), buffer.size(), 0)) > 0) {
      total += static_cast<uint64_t>(n);
    }
    arrived = total;
  });
  QmpStandIn source(sourceQmp, [&](UniqueFd connection) {
    limitReceiveWait(connection.get());
    std::vector<uint8_t> buffer(kMiB, 0x5a);
    for (uint64_t sent = 0; sent < kBytes; sent += buffer.size()) {
      if (!sendAll(connection.get(), buffer.data(), buffer.size())) return;
    }
    ::shutdown(connection.get(), SHUT_WR);
    // Until the destination's FIN: from here both ends are closed.
    uint8_t byte;
    while (::recv(connection.get(), &byte, 1, 0) > 0) {
    }
  });
  ASSERT_TRUE(source.listening());
  ASSERT_TRUE(destination.listening());
  ServerConfig config;
  config.tunnelDestinationQmp = destinationQmp;
  auto server = startServer(std::move(config));
  ASSERT_TRUE(server);
  std::unique_ptr<HandOffSource> handOff;
  net_->inA([&] {
    auto attempt = HandOffSource::prepare(Endpoint{NetnsPair::kAddressB, server->port()}, 15, {});
    ASSERT_TRUE(attempt) << attempt.error().message();
    ASSERT_NE(attempt->source, nullptr) << attempt->notOffered;
    handOff = std::move(attempt->source);
  });
  ASSERT_TRUE(handOff);
  {
    auto qmp = qemu::QmpClient::connect(sourceQmp, std::chrono::seconds(5));
    ASSERT_TRUE(qmp) << qmp.error().message();
    auto migrated = handOff->migrate(*qmp);
    ASSERT_TRUE(migrated) << migrated.error().message();
  }
  source.waitForMigration();
  destination.waitForMigration();
  EXPECT_EQ(arrived.load(), kBytes);
  HandOffBytes counted = handOff->finish(std::chrono::seconds(2));
  EXPECT_EQ(counted.sent, kBytes);
  EXPECT_EQ(counted.received, 0u);
  server->stop();
  for (const auto& e : sessionErrors()) EXPECT_EQ(e, "");
}

// A signal handler installed without SA_RESTART: a wait it interrupts fails
// with EINTR.
void ignoreSignal(int) {}

TEST(ConnectTcp, SignalsDuringTheConnectNeitherEndNorExtendTheWait) {
  // A listener whose accept queue is full drops further SYNs: a connect to it
  // stays in progress until its timeout.
  auto listener = listenTcp(Endpoint{"127.0.0.1", 0}, 0);
  ASSERT_TRUE(listener) << listener.error().message();
  auto port = boundPort(listener->get());
  ASSERT_TRUE(port) << port.error().message();
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(*port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::vector<UniqueFd> queued;
  for (int i = 0; i < 2; ++i) {
    queued.emplace_back(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    (void)::connect(queued.back().get(), reinterpret_cast<sockaddr*>(&address), sizeof address);
  }
  struct sigaction handler {};
  handler.sa_handler = ignoreSignal;
  sigemptyset(&handler.sa_mask);
  struct sigaction previous {};
  ASSERT_EQ(::sigaction(SIGUSR1, &handler, &previous), 0);
  std::atomic<bool> done{false};
  pthread_t connecting = ::pthread_self();
  std::thread signaller([&] {
    while (!done) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      if (!done) ::pthread_kill(connecting, SIGUSR1);
    }
  });
  constexpr auto kTimeout = std::chrono::milliseconds(1000);
  auto started = std::chrono::steady_clock::now();
  auto connected = connectTcp(Endpoint{"127.0.0.1", *port}, kTimeout);
  auto waited = std::chrono::steady_clock::now() - started;
  done = true;
  signaller.join();
  ::sigaction(SIGUSR1, &previous, nullptr);
  ASSERT_FALSE(connected) << "a connect that never completed was reported as made";
  EXPECT_EQ(connected.error().errnum, ETIMEDOUT) << connected.error().message();
  EXPECT_GE(waited, kTimeout - std::chrono::milliseconds(50));
  EXPECT_LT(waited, kTimeout * 3) << "each signal restarted the wait";
}

}  // namespace
}  // namespace Atoll::transfer
