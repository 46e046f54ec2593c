// QEMU live migration of a running TCG guest, (a) directly over TCP on
// loopback, (b) through Atoll's relay tunnel (source QEMU -> unix socket
// -> TunnelSource -> TCP -> TransferServer -> destination QEMU's
// `-incoming unix:PATH`, that path prepared before QEMU is told to migrate)
// and (c) over a connection Atoll hands to both QEMUs (HandOffSource ->
// TransferServer -> `getfd` + `migrate-incoming fd:NAME` on a destination
// started with `-incoming defer`; `getfd` + `migrate fd:NAME` on the source).
// The guest keeps a counter pattern in memory; the destination must be
// running and the counter must keep advancing there with the pattern intact.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <thread>

#include <gtest/gtest.h>

#include "MigrationChecks.h"
#include "QemuGuest.h"
#include "TestImages.h"
#include "migrate/transfer/Net.h"
#include "migrate/transfer/StreamTunnel.h"
#include "migrate/transfer/TransferServer.h"
#include "migrate/transfer/TunnelHandOff.h"

namespace Atoll::transfer {
namespace {

using testing::freeLoopbackPort;
using testing::loopbackTunnelServer;
using testing::QemuGuest;
using testing::TempDir;
using namespace std::chrono_literals;

// Migrates `source` (started by `start`, which issues QMP `migrate`; `uri`
// names the path in the log), checks it completed and that `destination`
// runs the guest with the counter advancing past where the source stopped.
// Sets `guestPanicked` instead of failing when the guest's kernel died there.
// Returns the RAM bytes QEMU sent (0 on failure).
uint64_t migrateAndCheck(QemuGuest& source, QemuGuest& destination, const std::string& uri,
                         const std::function<Result<void>()>& start, bool& guestPanicked) {
  // The default cap (128 MiB/s) would measure QEMU's throttle, not the path.
  EXPECT_TRUE(source.qmp().execute("migrate-set-parameters", {{"max-bandwidth", 8ull << 30}}));
  auto started = start();
  EXPECT_TRUE(started) << started.error().message();
  if (!started) return 0;
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
  EXPECT_TRUE(finished) << finished.error().message();
  if (!finished) return 0;
  EXPECT_TRUE(finished->succeeded()) << finished->status << ": " << finished->errorDescription;
  if (!finished->succeeded()) return 0;
  std::printf("  %s: total %llu ms, downtime %llu ms\n", uri.c_str(),
              static_cast<unsigned long long>(finished->totalTimeMs),
              static_cast<unsigned long long>(finished->downtimeMs));
  EXPECT_GT(finished->ramTransferredBytes, 0u);
  // QEMU's own figures, not the moment before it stored them.
  EXPECT_GT(finished->totalTimeMs, 0u);

  expectGuestRunsOnAtDestination(source, destination, guestPanicked);
  return finished->ramTransferredBytes;
}

// One guest: booted, moved directly over TCP, then on through the relay
// tunnel, then on over a handed-off connection.
void migrateDirectThenThroughTunnel(const testing::GuestImage& image, bool& guestPanicked) {
  TempDir dir;

  std::string error;
  auto source = testing::startSourceGuest(image, dir.path());
  ASSERT_TRUE(source);

  // (a) Directly over TCP on loopback.
  uint16_t port = freeLoopbackPort();
  ASSERT_NE(port, 0);
  std::string direct = "tcp:127.0.0.1:" + std::to_string(port);
  auto middle = QemuGuest::start(image, dir.path(), "direct", direct, error);
  ASSERT_TRUE(middle) << error;
  {
    SCOPED_TRACE("direct TCP");
    migrateAndCheck(
        *source, *middle, direct, [&] { return source->qmp().migrate(direct); }, guestPanicked);
  }
  if (guestPanicked || ::testing::Test::HasFatalFailure()) return;
  source.reset();
  {
    // The guest arrived by migration: QEMU there reports that incoming
    // migration as "completed", which is no migration from it.
    auto arrived = middle->qmp().queryMigrate();
    ASSERT_TRUE(arrived) << arrived.error().message();
    EXPECT_EQ(arrived->status, "none");
    EXPECT_FALSE(arrived->finished());
  }

  // (b) Through the tunnel: the same guest moves on from the first destination.
  std::string incoming = dir / "final.incoming";
  auto final = QemuGuest::start(image, dir.path(), "final", "unix:" + incoming, error);
  ASSERT_TRUE(final) << error;
  auto server = loopbackTunnelServer(dir, incoming, "");
  ASSERT_TRUE(server);
  std::string tunnelSocket = dir / "tunnel.sock";
  auto tunnel = TunnelSource::create(tunnelSocket, Endpoint{"127.0.0.1", server->port()}, 42,
                                     SocketOptions{});
  ASSERT_TRUE(tunnel) << tunnel.error().message();
  // The destination QEMU listens already: the connection through the peer to
  // it is made now, before QEMU is told to migrate.
  auto prepared = (*tunnel)->prepare(1);
  ASSERT_TRUE(prepared) << prepared.error().message();
  (*tunnel)->start();
  {
    SCOPED_TRACE("through the tunnel");
    std::string uri = "unix:" + tunnelSocket;
    migrateAndCheck(
        *middle, *final, uri, [&] { return middle->qmp().migrate(uri); }, guestPanicked);
  }
  if (guestPanicked || ::testing::Test::HasFatalFailure()) return;
  const TunnelStats& stats = (*tunnel)->stats();
  EXPECT_GE(stats.connections.load(), 1u);
  EXPECT_EQ((*tunnel)->preparedLeft(), 0u) << "QEMU's stream did not take the prepared connection";
  EXPECT_GT(stats.bytesToPeer.load(), 1u << 20) << "the stream did not go through the tunnel";
  EXPECT_EQ((*tunnel)->lastError(), "");
  (*tunnel)->stop();
  server->stop();
  middle.reset();

  // (c) Handed off: the same guest moves on over a connection both QEMUs
  // take from Atoll. The destination waits for `migrate-incoming`; its
  // second QMP monitor is the server's (the first is this test's).
  auto handed = QemuGuest::start(image, dir.path(), "handed", "defer", error);
  ASSERT_TRUE(handed) << error;
  auto handOffServer = loopbackTunnelServer(dir, "", handed->secondQmpPath());
  ASSERT_TRUE(handOffServer);
  auto attempt =
      HandOffSource::prepare(Endpoint{"127.0.0.1", handOffServer->port()}, 43, SocketOptions{});
  ASSERT_TRUE(attempt) << attempt.error().message();
  ASSERT_TRUE(attempt->source) << "the peer did not offer hand-off: " << attempt->notOffered;
  HandOffSource& handOff = *attempt->source;
  uint64_t ramBytes = 0;
  {
    SCOPED_TRACE("handed off");
    // Atoll's descriptor stays open through the check below: the destination
    // must complete and run the guest without seeing the connection's FIN.
    ramBytes = migrateAndCheck(
        *final, *handed, "fd:" + handOff.fdName(), [&] { return handOff.migrate(final->qmp()); },
        guestPanicked);
  }
  HandOffBytes bytes = handOff.finish(std::chrono::seconds(2));
  std::printf("  hand-off: %llu bytes sent, %llu received (QEMU: %llu RAM bytes)\n",
              static_cast<unsigned long long>(bytes.sent),
              static_cast<unsigned long long>(bytes.received),
              static_cast<unsigned long long>(ramBytes));
  if (guestPanicked || ramBytes == 0) return;
  // The stream holds the RAM QEMU counts plus device state.
  EXPECT_GE(bytes.sent, ramBytes) << "the kernel's count missed part of QEMU's stream";
  EXPECT_EQ(bytes.received, 0u) << "precopy without a return path sends nothing back";
  EXPECT_EQ(handOff.bytes().sent, bytes.sent) << "the count changed after finish()";
  handOffServer->stop();
}

TEST(QemuMigrationTest, GuestContinuesAfterDirectAndTunnelledMigration) {
  testing::withGuestImage(3, migrateDirectThenThroughTunnel);
}

}  // namespace
}  // namespace Atoll::transfer
