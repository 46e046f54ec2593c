// Kernel TLS on a kernel that has it: the test VM's Debian kernel (the
// build host's kernel has no CONFIG_TLS). Its init loads AES-GCM; `tls`, a
// module there as on stock hosts, loads only when the kernel is asked for
// it, which kernelTlsAvailable() does. Transfers over loopback where the
// kernel's records are on both ends, and where one end's records are the
// kernel's and the other's Atoll's own in user space: both must read the
// same TLS 1.3 record stream, byte for byte.
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "TestCertificates.h"
#include "TestImages.h"
#include "migrate/transfer/ImageSender.h"
#include "migrate/transfer/Net.h"
#include "migrate/transfer/TlsChannel.h"
#include "migrate/transfer/TransferServer.h"

namespace Atoll::transfer {
namespace {

using testing::TempDir;

constexpr uint64_t kMiB = 1 << 20;

class KernelTlsVmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (test VM label)";
    if (!kernelTlsAvailable()) {
      // The test VM ships the module: there it must have loaded.
      ASSERT_EQ(std::getenv("ATOLL_VM_KERNEL_TLS"), nullptr)
          << "the test VM has the tls module, but asking for the \"tls\" ULP did not load it";
      GTEST_SKIP() << "no kernel TLS on this kernel: \"tls\" is missing from "
                      "/proc/sys/net/ipv4/tcp_available_ulp (runs in the test VM)";
    }
    ASSERT_EQ(::mkdir((dir_ / "staging").c_str(), 0755), 0);
    ASSERT_TRUE(testing::makeTestCertificates(dir_.path()));
  }

  TlsConfig tlsFor(const std::string& who, bool kernelTls) {
    TlsConfig tls{dir_ / (who + ".crt"), dir_ / (who + ".key"), dir_ / "ca.crt"};
    tls.kernelTls = kernelTls;
    return tls;
  }

  // Sends a 24 MiB sparse image with random extents from a client whose
  // records are the kernel's or not to a server whose records are the
  // kernel's or not, and checks the copy and where each end's records ran.
  void transfer(bool clientKernelTls, bool serverKernelTls) {
    ServerConfig config;
    config.stagingDirectory = dir_ / "staging";
    config.listen = Endpoint{"127.0.0.1", 0};
    config.tls = tlsFor("server", serverKernelTls);
    config.onSession = [this](const std::string&, const Result<ReceiveReport>& report) {
      std::lock_guard lock(mutex_);
      serverRecordLayer_ = report ? report->recordLayer : "failed: " + report.error().message();
    };
    auto server = TransferServer::create(config);
    ASSERT_TRUE(server) << server.error().message();
    (*server)->start();

    std::string name = std::string("image-") + (clientKernelTls ? "k" : "u") +
                       (serverKernelTls ? "k" : "u") + ".img";
    std::string source = dir_ / name;
    testing::makeSparseRandomImage(source, 24 * kMiB, 4, 4 * kMiB, clientKernelTls ? 7 : 8);
    SenderOptions options;
    options.remoteName = name;
    options.transferId = clientKernelTls ? 61 : 62;
    auto sender = ImageSender::open(source, options);
    ASSERT_TRUE(sender) << sender.error().message();

    auto fd = connectTcp(Endpoint{"127.0.0.1", (*server)->port()}, std::chrono::seconds(30));
    ASSERT_TRUE(fd) << fd.error().message();
    auto socket = SocketChannel::create(std::move(*fd), "127.0.0.1", SocketOptions{});
    ASSERT_TRUE(socket) << socket.error().message();
    auto context = TlsContext::create(tlsFor("client", clientKernelTls), TlsContext::Role::kClient);
    ASSERT_TRUE(context) << context.error().message();
    auto channel = TlsChannel::handshake(std::move(*socket), *context);
    ASSERT_TRUE(channel) << channel.error().message();
    std::string clientRecordLayer = (*channel)->recordLayer();
    // Where the kernel encrypts, Atoll's records open what is received:
    // OpenSSL 3.0 gives the kernel no TLS 1.3 receive keys.
    const std::string kernelSending =
        "kernel TLS for sending, user space (Atoll's records over io_uring";
    if (clientKernelTls) {
      EXPECT_TRUE((*channel)->kernelSend()) << clientRecordLayer;
      EXPECT_EQ(clientRecordLayer.rfind(kernelSending, 0), 0u) << clientRecordLayer;
    } else {
      EXPECT_TRUE((*channel)->atollRecords()) << clientRecordLayer;
    }

    ASSERT_TRUE((*sender)->attach(std::move(*channel)));
    PreCopyPolicy policy;
    policy.maxRounds = 1;
    auto report = runPreCopy(**sender, policy);
    ASSERT_TRUE(report) << report.error().message();
    EXPECT_TRUE(report->verify.match);
    (*server)->stop();
    EXPECT_TRUE(testing::filesEqual(source, dir_ / ("staging/" + name)));

    std::lock_guard lock(mutex_);
    ASSERT_TRUE(serverRecordLayer_.has_value()) << "the server reported no session";
    if (serverKernelTls) {
      EXPECT_EQ(serverRecordLayer_->rfind(kernelSending, 0), 0u) << *serverRecordLayer_;
    } else {
      EXPECT_EQ(serverRecordLayer_->rfind("user space (Atoll's records", 0), 0u)
          << *serverRecordLayer_;
    }
    std::printf("  client: %s\n  server: %s\n", clientRecordLayer.c_str(),
                serverRecordLayer_->c_str());
  }

  struct Session {
    std::unique_ptr<TlsChannel> client, server;
  };
  // Both ends of one TLS session over loopback TCP, each handshaking on its
  // own thread; empty ends (and a test failure) when either end failed.
  Session connectSession(bool clientKernelTls, bool serverKernelTls) {
    auto listener = listenTcp(Endpoint{"127.0.0.1", 0});
    EXPECT_TRUE(listener) << listener.error().message();
    if (!listener) return {};
    const uint16_t port = boundPort(listener->get()).value_or(0);
    auto clientContext =
        TlsContext::create(tlsFor("client", clientKernelTls), TlsContext::Role::kClient);
    auto serverContext =
        TlsContext::create(tlsFor("server", serverKernelTls), TlsContext::Role::kServer);
    EXPECT_TRUE(clientContext && serverContext);
    if (!clientContext || !serverContext) return {};
    SocketOptions quick;
    quick.idleTimeout = std::chrono::seconds(5);
    auto serverSide = std::async(std::launch::async, [&]() -> Result<std::unique_ptr<TlsChannel>> {
      auto fd = acceptConnection(listener->get(), nullptr, quick.idleTimeout);
      if (!fd) return fd.error();
      auto socket = SocketChannel::create(std::move(*fd), "client", quick);
      if (!socket) return socket.error();
      return TlsChannel::handshake(std::move(*socket), *serverContext);
    });
    Result<std::unique_ptr<TlsChannel>> client =
        Error::invalid("connect", "127.0.0.1", "", "not attempted");
    if (auto fd = connectTcp(Endpoint{"127.0.0.1", port}, quick.idleTimeout); !fd) {
      client = fd.error();
    } else if (auto socket = SocketChannel::create(std::move(*fd), "server", quick); !socket) {
      client = socket.error();
    } else {
      client = TlsChannel::handshake(std::move(*socket), *clientContext);
    }
    auto server = serverSide.get();
    EXPECT_TRUE(client) << client.error().message();
    EXPECT_TRUE(server) << server.error().message();
    if (!client || !server) return {};
    return {std::move(*client), std::move(*server)};
  }

  TempDir dir_;
  std::mutex mutex_;
  std::optional<std::string> serverRecordLayer_;
};

// The first check of kernelTlsAvailable() (SetUp) loaded the module the
// way a stock host does: the kernel asked for the ULP's alias.
TEST_F(KernelTlsVmTest, TheTlsModuleLoadsOnRequest) {
  const char* log = std::getenv("ATOLL_VM_MODULE_REQUESTS");
  if (log == nullptr) GTEST_SKIP() << "no module request log: not in the test VM";
  std::ifstream in(log);
  std::string line;
  bool asked = false;
  while (std::getline(in, line)) asked = asked || line == "tcp-ulp-tls";
  EXPECT_TRUE(asked) << "the kernel never asked for tcp-ulp-tls (" << log << ")";
}

TEST_F(KernelTlsVmTest, KernelRecordsOnBothEnds) {
  transfer(true, true);
}

TEST_F(KernelTlsVmTest, KernelRecordsToAtollsRecords) {
  transfer(true, false);
}

TEST_F(KernelTlsVmTest, AtollsRecordsToKernelRecords) {
  transfer(false, true);
}

// A KeyUpdate that asks the kernel-sending end to update its own key too:
// the kernel keeps the sending key it was given, so that end ends the
// session with the reason rather than go on sealing under the old key
// (which OpenSSL 3.0 would do, and the peer would refuse as altered
// records). Its own request for an update is refused the same way.
TEST_F(KernelTlsVmTest, AKeyUpdateAskedOfTheKernelSendingEndEndsTheSessionClearly) {
  Session session = connectSession(true, false);
  ASSERT_TRUE(session.client && session.server);
  ASSERT_TRUE(session.client->kernelSend()) << session.client->recordLayer();
  std::vector<uint8_t> data(256 << 10, 0x5a);
  std::vector<uint8_t> got(data.size());

  // Data first, under the first keys, then the request.
  ASSERT_TRUE(session.server->sendAll(data.data(), data.size()));
  ASSERT_TRUE(session.client->recvExact(got.data(), got.size()));
  EXPECT_EQ(got, data);
  ASSERT_TRUE(session.server->updateSendingKey(true));
  ASSERT_TRUE(session.server->sendAll(data.data(), data.size()));
  auto received = session.client->recvExact(got.data(), got.size());
  ASSERT_FALSE(received) << "the kernel-sending end accepted a request it cannot honour";
  EXPECT_NE(received.error().message().find("kernel TLS"), std::string::npos)
      << received.error().message();

  auto own = session.client->updateSendingKey(false);
  ASSERT_FALSE(own);
  EXPECT_NE(own.error().message().find("kernel TLS"), std::string::npos) << own.error().message();
}

// Kernel TLS is a TCP upper-layer protocol: on a unix socket pair, where a
// host's local tunnel ends run, both ends asked for it get Atoll's records
// in user space (the kernel would refuse the ULP there), and data flows.
TEST_F(KernelTlsVmTest, AUnixSocketPairGetsAtollsRecordsOnBothEnds) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  UniqueFd serverFd(fds[1]), clientFd(fds[0]);
  auto clientContext = TlsContext::create(tlsFor("client", true), TlsContext::Role::kClient);
  auto serverContext = TlsContext::create(tlsFor("server", true), TlsContext::Role::kServer);
  ASSERT_TRUE(clientContext && serverContext);
  SocketOptions quick;
  quick.idleTimeout = std::chrono::seconds(5);
  auto serverSide = std::async(std::launch::async, [&]() -> Result<std::unique_ptr<TlsChannel>> {
    auto socket = SocketChannel::create(std::move(serverFd), "client", quick);
    if (!socket) return socket.error();
    return TlsChannel::handshake(std::move(*socket), *serverContext);
  });
  auto socket = SocketChannel::create(std::move(clientFd), "server", quick);
  ASSERT_TRUE(socket) << socket.error().message();
  auto client = TlsChannel::handshake(std::move(*socket), *clientContext);
  auto server = serverSide.get();
  ASSERT_TRUE(client) << client.error().message();
  ASSERT_TRUE(server) << server.error().message();
  for (TlsChannel* end : {client->get(), server->get()}) {
    EXPECT_FALSE(end->kernelSend()) << end->recordLayer();
    EXPECT_TRUE(end->atollRecords()) << end->recordLayer();
    EXPECT_EQ(end->recordLayer().rfind("user space (Atoll's records", 0), 0u) << end->recordLayer();
  }
  std::vector<uint8_t> data(3 << 20);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 131 + 7);
  std::vector<uint8_t> got(data.size());
  auto sent =
      std::async(std::launch::async, [&] { return (*client)->sendAll(data.data(), data.size()); });
  ASSERT_TRUE((*server)->recvExact(got.data(), got.size()));
  ASSERT_TRUE(sent.get());
  EXPECT_EQ(got, data);
}

}  // namespace
}  // namespace Atoll::transfer
