// Live migrations carried by real atolld processes on loopback, each driven
// through its API: the destination host's daemon (with [transfer] listen)
// registers the destination QEMU (-incoming defer, its QMP socket), the
// source host's daemon migrates the running TCG guest to it under the tunnel
// id the registration gave. That migration completes: its record shows it
// handed off, with bytes through the connection and QEMU's downtime, and the
// guest's counter continues on the destination. From there, a migration
// cancelled through the API, one running when the source daemon stops, and
// one the CLI follows (`atoll migration start --wait`) until its timeout_s
// cancels it all end cancelled with the guest still running; then the same
// QEMU migrates once more, to completion, and the counter continues whole.
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "MigrationChecks.h"
#include "QemuGuest.h"
#include "tests/runtime/TestSupport.h"

namespace Atoll::transfer {
namespace {

using testing::QemuGuest;
using namespace std::chrono_literals;

struct Reply {
  int status = 0;
  nlohmann::json body;
};

Reply call(const std::string& socket, const std::string& method, const std::string& path,
           const nlohmann::json& body = nullptr) {
  auto response = test::rawExchange(
      socket, test::httpRequest(method, path, body.is_null() ? std::string() : body.dump()), 30s);
  return {response.status, nlohmann::json::parse(response.body, nullptr, false)};
}

// One host's atolld: its own state, API socket and log; telemetry off (the
// guests are not libvirt's), receiving on loopback when `listens`.
struct HostDaemon {
  test::TempDir dir;
  std::unique_ptr<test::DaemonProcess> process;
  std::string socket() const { return dir.file("atolld.sock"); }

  bool start(bool listens, std::string& failure) {
    std::string config = "[telemetry]\nenabled = false\n";
    if (listens) {
      config += "[transfer]\nlisten = \"127.0.0.1:0\"\nstaging_directory = \"" +
                dir.file("staging") + "\"\n";
    }
    test::writeTextFile(dir.file("atolld.toml"), config);
    process = test::DaemonProcess::start(
        dir.path(),
        {"--config", dir.file("atolld.toml"), "--socket", socket(), "--state-dir",
         dir.file("state"), "--metrics-listen", "127.0.0.1:0"},
        &failure);
    return process != nullptr;
  }

  // SIGTERM drains the daemon; it exits 0 within a bound.
  void stop() {
    if (!process) return;
    process->signal(SIGTERM);
    auto exit = process->waitExit(20s);
    ASSERT_TRUE(exit) << "atolld did not stop within 20 s\n" << process->log();
    EXPECT_TRUE(WIFEXITED(*exit) && WEXITSTATUS(*exit) == 0) << process->log();
  }
};

// Polls GET /v1/migrations until migration `id` leaves "running"; its
// last record.
nlohmann::json waitFinished(const std::string& socket, uint64_t id, std::chrono::seconds timeout) {
  nlohmann::json entry;
  for (auto deadline = std::chrono::steady_clock::now() + timeout;
       std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(250ms)) {
    auto listed = call(socket, "GET", "/v1/migrations");
    for (const auto& m : listed.body.value("migrations", nlohmann::json::array()))
      if (m.value("id", uint64_t(0)) == id) entry = m;
    if (entry.is_object() && entry["state"] != "running" && entry["state"] != "starting") break;
  }
  return entry;
}

struct CliResult {
  int exitCode = -1;
  std::string out;
  std::string err;
};

// Runs the built `atoll`, bounded by coreutils' timeout.
CliResult runAtoll(const testing::TempDir& dir, const std::string& args) {
  std::string out = dir / "cli.out", err = dir / "cli.err";
  std::string command =
      "timeout 120 " + std::string(ATOLL_CLI_PATH) + " " + args + " >" + out + " 2>" + err;
  int status = std::system(command.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, test::readTextFile(out),
          test::readTextFile(err)};
}

void expectSourceRuns(QemuGuest& source) {
  auto state = source.qmp().queryStatus();
  ASSERT_TRUE(state) << state.error().message();
  EXPECT_EQ(*state, "running");
}

// Registers `destination` with the destination host's daemon; its tunnel id
// and the daemon's receiving port.
std::pair<std::string, int> registerIncoming(const HostDaemon& host, QemuGuest& destination) {
  auto registered = call(host.socket(), "POST", "/v1/migrations/incoming",
                         {{"qmp", destination.secondQmpPath()}, {"expires_s", 120}});
  EXPECT_EQ(registered.status, 201) << registered.body.dump() << host.process->log();
  return {registered.body.value("tunnel_id", ""), registered.body.value("port", 0)};
}

// Asks the source host's daemon to migrate `source` at full speed (the
// default cap, 128 MiB/s, would measure QEMU's throttle, not the path) to
// the destination registered under `tunnelId`.
Reply startFullSpeedMigration(const HostDaemon& sourceHost, QemuGuest& source,
                              const std::string& tunnelId, int port) {
  return call(sourceHost.socket(), "POST", "/v1/migrations",
              {{"qmp", source.secondQmpPath()},
               {"peer", "127.0.0.1:" + std::to_string(port)},
               {"tunnel_id", tunnelId},
               {"bwlimit", "8G"},
               {"timeout_s", 60}});
}

// At 64 KiB/s the guest's RAM cannot move within the test: the migration
// is still running when it is cancelled.
uint64_t startSlowMigration(const HostDaemon& sourceHost, QemuGuest& source,
                            const HostDaemon& destinationHost, QemuGuest& destination) {
  auto [tunnelId, port] = registerIncoming(destinationHost, destination);
  auto started = call(sourceHost.socket(), "POST", "/v1/migrations",
                      {{"qmp", source.secondQmpPath()},
                       {"peer", "127.0.0.1:" + std::to_string(port)},
                       {"tunnel_id", tunnelId},
                       {"bwlimit", "64k"}});
  EXPECT_EQ(started.status, 201) << started.body.dump() << sourceHost.process->log();
  EXPECT_EQ(started.body["mode"], "hand-off") << started.body.dump();
  std::this_thread::sleep_for(1s);
  return started.body.value("id", uint64_t(0));
}

void migrateThroughDaemons(const testing::GuestImage& image, bool& guestPanicked) {
  testing::TempDir dir;
  std::string error;
  auto source = testing::startSourceGuest(image, dir.path());
  ASSERT_TRUE(source);

  HostDaemon destinationHost;
  std::string failure;
  ASSERT_TRUE(destinationHost.start(true, failure)) << failure;

  std::unique_ptr<QemuGuest> migrated;
  {
    HostDaemon sourceHost;
    ASSERT_TRUE(sourceHost.start(false, failure)) << failure;
    auto destination = QemuGuest::start(image, dir.path(), "destination", "defer", error);
    ASSERT_TRUE(destination) << error;
    auto [tunnelId, port] = registerIncoming(destinationHost, *destination);
    ASSERT_GT(port, 0);

    auto started = startFullSpeedMigration(sourceHost, *source, tunnelId, port);
    ASSERT_EQ(started.status, 201) << started.body.dump() << sourceHost.process->log();
    EXPECT_EQ(started.body["mode"], "hand-off") << started.body.dump();
    EXPECT_EQ(started.body["tunnel_id"], tunnelId) << started.body.dump();

    auto record = waitFinished(sourceHost.socket(), started.body.value("id", uint64_t(0)), 90s);
    std::printf("  %s\n", record.dump().c_str());
    ASSERT_TRUE(record.is_object()) << "the migration is not listed\n" << sourceHost.process->log();
    ASSERT_EQ(record["state"], "completed") << record.dump() << "\n"
                                            << sourceHost.process->log() << "\n"
                                            << destinationHost.process->log();
    EXPECT_EQ(record["mode"], "hand-off");
    EXPECT_EQ(record["tunnel_id"], tunnelId);
    EXPECT_EQ(record["status"], "completed");
    EXPECT_GT(record["downtime_ms"].get<uint64_t>(), 0u) << record.dump();
    const uint64_t ramBytes = record["ram_transferred_bytes"].get<uint64_t>();
    const uint64_t tunnelBytes = record["tunnel"]["bytes_to_peer"].get<uint64_t>();
    EXPECT_GT(ramBytes, 0u) << record.dump();
    // The connection carried the RAM QEMU counts plus device state and framing.
    EXPECT_GE(tunnelBytes, ramBytes) << record.dump();
    ASSERT_TRUE(record["summary"].is_object()) << record.dump();
    EXPECT_EQ(record["summary"]["status"], "completed");
    EXPECT_EQ(record["summary"]["tunnel"]["mode"], "hand-off");

    // The registration is spent: its QEMU took the connection.
    auto incoming = call(destinationHost.socket(), "GET", "/v1/migrations/incoming");
    ASSERT_EQ(incoming.status, 200) << incoming.body.dump();
    for (const auto& entry : incoming.body["incoming"])
      EXPECT_NE(entry.value("tunnel_id", ""), tunnelId) << incoming.body.dump();

    // A finished migration cannot be cancelled.
    EXPECT_EQ(call(sourceHost.socket(), "DELETE",
                   "/v1/migrations/" + std::to_string(record["id"].get<uint64_t>()))
                  .status,
              409);

    testing::expectGuestRunsOnAtDestination(*source, *destination, guestPanicked);
    sourceHost.stop();
    migrated = std::move(destination);
  }
  if (guestPanicked || ::testing::Test::HasFatalFailure()) return;

  // The cancellations start from the guest that now runs at the
  // destination; after them that QEMU migrates again, to completion, as an
  // operator retries a move: a new migration resends every page, so the
  // counter continues whole. (With a RAM size of a whole number of 64-page
  // words QEMU 7.2's TCG dirty tracking loses pages on any migration; the
  // guest's RAM size avoids that, see QemuGuest.cpp.)
  {
    SCOPED_TRACE("cancelled through the API");
    HostDaemon sourceHost;
    ASSERT_TRUE(sourceHost.start(false, failure)) << failure;
    auto destination = QemuGuest::start(image, dir.path(), "cancelled", "defer", error);
    ASSERT_TRUE(destination) << error;
    uint64_t id = startSlowMigration(sourceHost, *migrated, destinationHost, *destination);
    ASSERT_GT(id, 0u);
    auto running = call(sourceHost.socket(), "GET", "/v1/migrations");
    ASSERT_EQ(running.body["migrations"].size(), 1u) << running.body.dump();
    EXPECT_EQ(running.body["migrations"][0]["state"], "running") << running.body.dump();
    auto cancelled = call(sourceHost.socket(), "DELETE", "/v1/migrations/" + std::to_string(id));
    EXPECT_EQ(cancelled.status, 200) << cancelled.body.dump();
    auto record = waitFinished(sourceHost.socket(), id, 20s);
    std::printf("  %s\n", record.dump().c_str());
    EXPECT_EQ(record["state"], "cancelled") << record.dump() << sourceHost.process->log();
    EXPECT_EQ(record["status"], "cancelled") << record.dump();
    EXPECT_EQ(record.value("cancel_reason", ""), "cancelled through the API") << record.dump();
    EXPECT_EQ(call(sourceHost.socket(), "DELETE", "/v1/migrations/" + std::to_string(id)).status,
              409);
    expectSourceRuns(*migrated);
    sourceHost.stop();
  }
  {
    SCOPED_TRACE("running when the source daemon stops");
    HostDaemon sourceHost;
    ASSERT_TRUE(sourceHost.start(false, failure)) << failure;
    auto destination = QemuGuest::start(image, dir.path(), "stopped", "defer", error);
    ASSERT_TRUE(destination) << error;
    uint64_t id = startSlowMigration(sourceHost, *migrated, destinationHost, *destination);
    ASSERT_GT(id, 0u);
    auto stopping = std::chrono::steady_clock::now();
    sourceHost.stop();
    std::printf("  atolld stopped %.1f s after SIGTERM with a migration running\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - stopping).count());
    EXPECT_TRUE(sourceHost.process->waitLog(
        "event=migration_finished id=" + std::to_string(id) + " state=cancelled", 1s))
        << sourceHost.process->log();
    expectSourceRuns(*migrated);
  }

  {
    SCOPED_TRACE("cancelled at timeout_s, followed by `atoll migration start --wait`");
    HostDaemon sourceHost;
    ASSERT_TRUE(sourceHost.start(false, failure)) << failure;
    auto destination = QemuGuest::start(image, dir.path(), "timed-out", "defer", error);
    ASSERT_TRUE(destination) << error;
    auto registered =
        runAtoll(dir, "migration incoming --json --socket " + destinationHost.socket() + " --qmp " +
                          destination->secondQmpPath());
    ASSERT_EQ(registered.exitCode, 0) << registered.err;
    auto reply = nlohmann::json::parse(registered.out, nullptr, false);
    ASSERT_TRUE(reply.is_object()) << registered.out;
    auto followed = runAtoll(dir, "migration start --wait --json --socket " + sourceHost.socket() +
                                      " --qmp " + migrated->secondQmpPath() + " --to 127.0.0.1:" +
                                      std::to_string(reply.value("port", 0)) + " --tunnel-id " +
                                      reply.value("tunnel_id", "") + " --bwlimit 64k --timeout 1");
    EXPECT_EQ(followed.exitCode, 1) << followed.out << followed.err;
    auto record = nlohmann::json::parse(followed.out, nullptr, false);
    ASSERT_TRUE(record.is_object()) << followed.out << followed.err;
    EXPECT_EQ(record["state"], "cancelled") << record.dump();
    EXPECT_EQ(record.value("cancel_reason", ""), "not finished within timeout_s 1")
        << record.dump();
    EXPECT_EQ(record["mode"], "hand-off") << record.dump();
    expectSourceRuns(*migrated);
  }

  {
    SCOPED_TRACE("completed after three cancelled migrations");
    HostDaemon sourceHost;
    ASSERT_TRUE(sourceHost.start(false, failure)) << failure;
    auto destination = QemuGuest::start(image, dir.path(), "retried", "defer", error);
    ASSERT_TRUE(destination) << error;
    auto [tunnelId, port] = registerIncoming(destinationHost, *destination);
    ASSERT_GT(port, 0);
    auto started = startFullSpeedMigration(sourceHost, *migrated, tunnelId, port);
    ASSERT_EQ(started.status, 201) << started.body.dump() << sourceHost.process->log();
    auto record = waitFinished(sourceHost.socket(), started.body.value("id", uint64_t(0)), 90s);
    std::printf("  %s\n", record.dump().c_str());
    ASSERT_TRUE(record.is_object()) << "the migration is not listed\n" << sourceHost.process->log();
    ASSERT_EQ(record["state"], "completed") << record.dump() << "\n"
                                            << sourceHost.process->log() << "\n"
                                            << destinationHost.process->log();
    testing::expectGuestRunsOnAtDestination(*migrated, *destination, guestPanicked);
    sourceHost.stop();
  }

  destinationHost.stop();
}

TEST(QemuDaemonMigrationTest, DaemonsCancelAndHandTheGuestOverThroughTheirApis) {
  testing::withGuestImage(3, migrateThroughDaemons);
}

}  // namespace
}  // namespace Atoll::transfer
