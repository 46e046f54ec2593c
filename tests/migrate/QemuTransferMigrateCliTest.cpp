// `atoll transfer migrate`, the real binary, moving a running TCG guest
// through the stream tunnel to a TransferServer whose `--tunnel-to` is the
// destination QEMU's `-incoming unix:PATH`: refusals that leave the source
// running (peer not listening, destination not listening, a migration
// cancelled at --timeout), then one migration that must complete with every
// byte QEMU reports having gone through the tunnel and the guest continuing
// on the destination.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "MigrationChecks.h"
#include "QemuGuest.h"
#include "TestImages.h"
#include "migrate/transfer/Net.h"
#include "migrate/transfer/TransferServer.h"

namespace Atoll::transfer {
namespace {

using testing::freeLoopbackPort;
using testing::QemuGuest;
using testing::TempDir;
using namespace std::chrono_literals;

struct CliResult {
  int exitCode = -1;
  std::string out;
  std::string err;
};

std::string readAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Runs the built CLI, bounded by coreutils' timeout beyond its own --timeout.
CliResult runAtoll(const TempDir& dir, const std::string& args) {
  std::string out = dir / "cli.out", err = dir / "cli.err";
  std::string command =
      "timeout 120 " + std::string(ATOLL_CLI_PATH) + " " + args + " >" + out + " 2>" + err;
  int status = std::system(command.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, readAll(out), readAll(err)};
}

std::unique_ptr<TransferServer> tunnelServer(const TempDir& dir, const std::string& destination) {
  ::mkdir((dir / "staging").c_str(), 0755);
  ServerConfig config;
  config.stagingDirectory = dir / "staging";
  config.listen = Endpoint{"127.0.0.1", 0};
  config.tunnelDestination = destination;
  auto server = TransferServer::create(config);
  if (!server) return nullptr;
  (*server)->start();
  return std::move(*server);
}

// The refusal as the operator reads it, in the test's log.
void show(const CliResult& result) {
  std::printf("  exit %d: %s", result.exitCode, result.err.c_str());
}

void expectSourceRuns(QemuGuest& source) {
  auto state = source.qmp().queryStatus();
  ASSERT_TRUE(state) << state.error().message();
  EXPECT_EQ(*state, "running");
}

void migrateWithCli(const testing::GuestImage& image, bool& guestPanicked) {
  TempDir dir;
  std::string error;
  auto source = QemuGuest::start(image, dir.path(), "source", "", error);
  ASSERT_TRUE(source) << error;
  ASSERT_TRUE(source->waitForPassBeyond(3, 45s))
      << "the guest did not start its workload; serial log: " << source->serialLog();
  const std::string migrate = "transfer migrate --qmp " + source->secondQmpPath();

  {
    SCOPED_TRACE("no peer listening");
    std::string peer = "127.0.0.1:" + std::to_string(freeLoopbackPort());
    auto result = runAtoll(dir, migrate + " --to " + peer);
    show(result);
    EXPECT_EQ(result.exitCode, 3) << result.err;
    EXPECT_NE(result.err.find(peer), std::string::npos) << result.err;
    expectSourceRuns(*source);
  }
  {
    SCOPED_TRACE("the peer's destination QEMU is not listening");
    auto server = tunnelServer(dir, dir / "nobody.incoming");
    ASSERT_TRUE(server);
    auto result =
        runAtoll(dir, migrate + " --to 127.0.0.1:" + std::to_string(server->port()) + " --json");
    show(result);
    EXPECT_EQ(result.exitCode, 3) << result.err;
    EXPECT_NE(result.err.find(dir / "nobody.incoming"), std::string::npos) << result.err;
    expectSourceRuns(*source);
    server->stop();
  }
  {
    SCOPED_TRACE("cancelled at --timeout");
    std::string incoming = dir / "cancelled.incoming";
    auto destination = QemuGuest::start(image, dir.path(), "cancelled", "unix:" + incoming, error);
    ASSERT_TRUE(destination) << error;
    auto server = tunnelServer(dir, incoming);
    ASSERT_TRUE(server);
    // 64 KiB/s: the guest's RAM cannot move within the second.
    auto result = runAtoll(dir, migrate + " --to 127.0.0.1:" + std::to_string(server->port()) +
                                    " --bwlimit 64k --timeout 1 --json");
    show(result);
    EXPECT_EQ(result.exitCode, 1) << result.err;
    EXPECT_NE(result.err.find("--timeout 1 s"), std::string::npos) << result.err;
    auto summary = nlohmann::json::parse(result.out, nullptr, false);
    ASSERT_TRUE(summary.is_object()) << result.out << result.err;
    EXPECT_EQ(summary["status"], "cancelled") << result.out;
    expectSourceRuns(*source);
    server->stop();
  }

  std::string incoming = dir / "final.incoming";
  auto destination = QemuGuest::start(image, dir.path(), "final", "unix:" + incoming, error);
  ASSERT_TRUE(destination) << error;
  auto server = tunnelServer(dir, incoming);
  ASSERT_TRUE(server);
  // The default cap (128 MiB/s) would measure QEMU's throttle, not the path.
  auto result = runAtoll(dir, migrate + " --to 127.0.0.1:" + std::to_string(server->port()) +
                                  " --bwlimit 8G --timeout 60 --json");
  server->stop();
  ASSERT_EQ(result.exitCode, 0) << result.err << result.out;
  auto summary = nlohmann::json::parse(result.out, nullptr, false);
  ASSERT_TRUE(summary.is_object()) << result.out;
  std::printf("  %s\n", summary.dump().c_str());
  EXPECT_EQ(summary["status"], "completed");
  uint64_t tunnelBytes = summary["tunnel"]["bytes_to_peer"].get<uint64_t>();
  uint64_t qemuBytes = summary["ram_transferred_bytes"].get<uint64_t>();
  EXPECT_GT(qemuBytes, 0u);
  // The stream holds the RAM QEMU counts plus device state and framing.
  EXPECT_GE(tunnelBytes, qemuBytes);
  EXPECT_EQ(summary["tunnel"]["connections"], 1u);

  expectGuestRunsOnAtDestination(*source, *destination, guestPanicked);
}

TEST(QemuTransferMigrateCliTest, CliMigratesThroughTheTunnelAndRefusesCleanly) {
  testing::withGuestImage(3, migrateWithCli);
}

}  // namespace
}  // namespace Atoll::transfer
