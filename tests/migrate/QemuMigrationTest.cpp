// QEMU live migration of a running TCG guest, (a) directly over TCP on
// loopback and (b) through Atoll's stream tunnel (source QEMU -> unix socket
// -> TunnelSource -> TCP -> TransferServer -> destination QEMU's
// `-incoming unix:PATH`, that path prepared before QEMU is told to migrate).
// The guest keeps a counter pattern in memory; the
// destination must be running and the counter must keep advancing there with
// the pattern intact.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "MigrationChecks.h"
#include "QemuGuest.h"
#include "TestImages.h"
#include "migrate/transfer/Net.h"
#include "migrate/transfer/StreamTunnel.h"
#include "migrate/transfer/TransferServer.h"

namespace Atoll::transfer {
namespace {

using testing::freeLoopbackPort;
using testing::QemuGuest;
using testing::TempDir;
using namespace std::chrono_literals;

// Migrates `source` to `uri`, checks it completed and that `destination`
// runs the guest with the counter advancing past where the source stopped.
// Sets `guestPanicked` instead of failing when the guest's kernel died there.
void migrateAndCheck(QemuGuest& source, QemuGuest& destination, const std::string& uri,
                     bool& guestPanicked) {
  // The default cap (128 MiB/s) would measure QEMU's throttle, not the path.
  ASSERT_TRUE(source.qmp().execute("migrate-set-parameters", {{"max-bandwidth", 8ull << 30}}));
  auto started = source.qmp().migrate(uri);
  ASSERT_TRUE(started) << started.error().message();
  double lastProgress = -1;
  auto finished = source.qmp().waitForMigration(40s, 50ms, [&](const qemu::MigrationStatus& s) {
    if (s.progress() - lastProgress >= 0.25 || s.finished()) {
      lastProgress = s.progress();
      std::printf("  %s: %s %.0f%% sent %llu of %llu bytes, %.0f Mbit/s\n", uri.c_str(),
                  s.status.c_str(), 100 * s.progress(),
                  static_cast<unsigned long long>(s.ramTransferredBytes),
                  static_cast<unsigned long long>(s.ramTotalBytes), s.ramMbps);
    }
  });
  ASSERT_TRUE(finished) << finished.error().message();
  ASSERT_TRUE(finished->succeeded()) << finished->status << ": " << finished->errorDescription;
  std::printf("  %s: total %llu ms, downtime %llu ms\n", uri.c_str(),
              static_cast<unsigned long long>(finished->totalTimeMs),
              static_cast<unsigned long long>(finished->downtimeMs));
  EXPECT_GT(finished->ramTransferredBytes, 0u);

  expectGuestRunsOnAtDestination(source, destination, guestPanicked);
}

// One guest: booted, moved directly over TCP, then on through the tunnel.
void migrateDirectThenThroughTunnel(const testing::GuestImage& image, bool& guestPanicked) {
  TempDir dir;

  std::string error;
  auto source = QemuGuest::start(image, dir.path(), "source", "", error);
  ASSERT_TRUE(source) << error;
  ASSERT_TRUE(source->waitForPassBeyond(3, 45s))
      << "the guest did not start its workload; serial log: " << source->serialLog();

  // (a) Directly over TCP on loopback.
  uint16_t port = freeLoopbackPort();
  ASSERT_NE(port, 0);
  std::string direct = "tcp:127.0.0.1:" + std::to_string(port);
  auto middle = QemuGuest::start(image, dir.path(), "direct", direct, error);
  ASSERT_TRUE(middle) << error;
  {
    SCOPED_TRACE("direct TCP");
    migrateAndCheck(*source, *middle, direct, guestPanicked);
  }
  if (guestPanicked || ::testing::Test::HasFatalFailure()) return;
  source.reset();

  // (b) Through the tunnel: the same guest moves on from the first destination.
  std::string incoming = dir / "final.incoming";
  auto final = QemuGuest::start(image, dir.path(), "final", "unix:" + incoming, error);
  ASSERT_TRUE(final) << error;
  ::mkdir((dir / "staging").c_str(), 0755);
  ServerConfig config;
  config.stagingDirectory = dir / "staging";
  config.listen = Endpoint{"127.0.0.1", 0};
  config.tunnelDestination = incoming;
  auto server = TransferServer::create(config);
  ASSERT_TRUE(server) << server.error().message();
  (*server)->start();
  std::string tunnelSocket = dir / "tunnel.sock";
  auto tunnel = TunnelSource::create(tunnelSocket, Endpoint{"127.0.0.1", (*server)->port()}, 42,
                                     SocketOptions{});
  ASSERT_TRUE(tunnel) << tunnel.error().message();
  // The destination QEMU listens already: the connection through the peer to
  // it is made now, before QEMU is told to migrate.
  auto prepared = (*tunnel)->prepare(1);
  ASSERT_TRUE(prepared) << prepared.error().message();
  (*tunnel)->start();
  {
    SCOPED_TRACE("through the tunnel");
    migrateAndCheck(*middle, *final, "unix:" + tunnelSocket, guestPanicked);
  }
  const TunnelStats& stats = (*tunnel)->stats();
  EXPECT_GE(stats.connections.load(), 1u);
  EXPECT_EQ((*tunnel)->preparedLeft(), 0u) << "QEMU's stream did not take the prepared connection";
  EXPECT_GT(stats.bytesToPeer.load(), 1u << 20) << "the stream did not go through the tunnel";
  EXPECT_EQ((*tunnel)->lastError(), "");
  (*tunnel)->stop();
  (*server)->stop();
}

TEST(QemuMigrationTest, GuestContinuesAfterDirectAndTunnelledMigration) {
  testing::withGuestImage(3, migrateDirectThenThroughTunnel);
}

}  // namespace
}  // namespace Atoll::transfer
