// atoll migration: live migrations of QEMU VMs carried by the daemons on
// both hosts (`atoll transfer migrate` does the same without a daemon).
//   incoming  on the destination host: register the QEMU waiting for the
//             migration (hand-off: its QMP socket, QEMU started with
//             -incoming defer; relay: its -incoming unix:PATH); prints the
//             tunnel id the source names
//   start     on the source host: atolld migrates the QEMU behind --qmp to
//             the peer's receiving endpoint; --wait follows it to the end
//   list      the migrations this atolld drives, with QEMU's figures, and
//             the destinations registered for incoming ones
//   cancel    migrate_cancel one of them; the source VM keeps running
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "migrate/qemu/MigrationReport.h"
#include "migrate/transfer/Net.h"
#include "migrate/transfer/QemuMigration.h"
#include "migrate/transfer/Rate.h"
#include "runtime/ApiDefaults.h"
#include "tools/DaemonClient.h"
#include "tools/JsonCells.h"
#include "tools/NumberOptions.h"
#include "tools/TransferMigrate.h"
#include "tools/Verbs.h"

namespace Atoll::cli {

namespace {

using namespace std::chrono_literals;

// QEMU's multifd accepts up to 255 channels; the daemon takes up to 64.
constexpr int64_t kMaxChannels = 64;
constexpr auto kWaitPollInterval = 500ms;
// POST /v1/migrations answers once QEMU was told to migrate, or with 202
// "starting" before the daemon's own request deadline, whichever is first.
constexpr double kStartReplySeconds = 30;

[[noreturn]] void usage(const std::string& message) {
  std::cerr << "atoll migration: " << message << "\n";
  throw CLI::RuntimeError(kExitUsage);
}

// The daemon runs elsewhere than the caller: a relative path is the
// caller's, so it goes out absolute.
std::string absolutePath(const std::string& option, const std::string& path) {
  if (path.empty()) usage(option + ": an empty path");
  std::error_code error;
  auto absolute = std::filesystem::absolute(path, error);
  if (error) usage(option + " '" + path + "': " + error.message());
  return absolute.lexically_normal().string();
}

struct IncomingArgs {
  std::string qmp;
  std::string unixSocket;
  int64_t expiresSeconds = 600;
  bool json = false;
  DaemonConnection connection;
};

struct StartArgs {
  std::string qmp;
  std::string to;
  std::string tunnelId;
  int64_t channels = 1;
  std::string bwlimit;
  std::string downtimeLimit;
  bool relay = false;
  double timeoutSeconds = 0;
  bool wait = false;
  bool json = false;
  DaemonConnection connection;
};

struct DaemonArgs {
  uint64_t id = 0;
  bool json = false;
  DaemonConnection connection;
};

void runIncoming(const IncomingArgs& args) {
  if (args.qmp.empty() == args.unixSocket.empty()) {
    usage(
        "give exactly one of --qmp PATH (hand-off: the destination QEMU runs with -incoming "
        "defer) and --unix PATH (relay: it runs with -incoming unix:PATH)");
  }
  if (args.expiresSeconds < 1 || args.expiresSeconds > 86400) {
    usage("--expires " + std::to_string(args.expiresSeconds) + ": must be from 1 to 86400 seconds");
  }
  nlohmann::json body{{"expires_s", args.expiresSeconds}};
  if (!args.qmp.empty()) {
    body["qmp"] = absolutePath("--qmp", args.qmp);
  } else {
    body["unix"] = absolutePath("--unix", args.unixSocket);
  }
  DaemonClient client(args.connection);
  DaemonReply reply = expectSuccess(client.post("/v1/migrations/incoming", body), args.json);
  if (args.json) {
    std::cout << reply.body.dump() << "\n";
    return;
  }
  std::cout << textCell(reply.body, "tunnel_id") << "\n";
  std::cerr << "atoll migration: registered for " << textCell(reply.body, "expires_s")
            << " s; on the source host: atoll migration start --qmp SOCKET --to THIS_HOST:"
            << textCell(reply.body, "port") << " --tunnel-id " << textCell(reply.body, "tunnel_id")
            << "\n";
}

// The migration's entry in GET /v1/migrations; null when it is not there.
nlohmann::json findMigration(DaemonClient& client, uint64_t id, bool json) {
  DaemonReply reply = expectSuccess(client.get("/v1/migrations"), json);
  for (const auto& entry : reply.body.value("migrations", nlohmann::json::array())) {
    if (entry.value("id", uint64_t(0)) == id) return entry;
  }
  return nullptr;
}

uint64_t number(const nlohmann::json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}

double moment(const nlohmann::json& timeline, const char* key) {
  auto it = timeline.find(key);
  return it != timeline.end() && it->is_number() ? it->get<double>() : -1;
}

// QEMU's report as the daemon relays it.
qemu::MigrationStatus statusOf(const nlohmann::json& entry) {
  qemu::MigrationStatus status;
  status.status = entry.value("status", std::string());
  status.totalTimeMs = number(entry, "total_time_ms");
  status.setupTimeMs = number(entry, "setup_time_ms");
  status.downtimeMs = number(entry, "downtime_ms");
  status.expectedDowntimeMs = number(entry, "expected_downtime_ms");
  status.ramTransferredBytes = number(entry, "ram_transferred_bytes");
  status.ramRemainingBytes = number(entry, "ram_remaining_bytes");
  status.ramTotalBytes = number(entry, "ram_total_bytes");
  status.dirtySyncCount = number(entry, "passes");
  status.dirtyPagesRate = number(entry, "dirty_pages_rate");
  status.pageSize = number(entry, "page_size");
  status.ramMbps = entry.value("ram_mbps", 0.0);
  status.errorDescription = entry.value("qemu_error", std::string());
  return status;
}

// The tunnel's figures; the timeline comes with the summary once finished.
qemu::TunnelFigures figuresOf(const nlohmann::json& entry) {
  qemu::TunnelFigures figures;
  const nlohmann::json tunnel = entry.value("tunnel", nlohmann::json::object());
  figures.mode = tunnel.value("mode", entry.value("mode", std::string("relay")));
  figures.bytesToPeer = number(tunnel, "bytes_to_peer");
  figures.bytesFromPeer = number(tunnel, "bytes_from_peer");
  figures.connections = static_cast<uint32_t>(number(tunnel, "connections"));
  auto summary = entry.find("summary");
  if (summary != entry.end() && summary->is_object()) {
    const nlohmann::json timeline =
        summary->value("tunnel", nlohmann::json::object()).value("timeline_ms", nlohmann::json());
    if (timeline.is_object()) {
      figures.peerAckedMs = moment(timeline, "destination_reached");
      figures.localAcceptedMs = moment(timeline, "qemu_connected");
      figures.firstByteMs = moment(timeline, "first_byte");
      figures.lastByteMs = moment(timeline, "last_byte");
      figures.closedMs = moment(timeline, "closed");
    }
  }
  return figures;
}

// Follows the migration until it finishes; exits non-zero unless completed.
void waitForMigration(DaemonClient& client, uint64_t id, bool json) {
  bool drawn = false;
  nlohmann::json entry;
  for (;;) {
    entry = findMigration(client, id, json);
    if (!entry.is_object()) {
      fail(VerbFailure{kExitFailure, "migration " + std::to_string(id) +
                                         " is no longer listed by atolld (did it restart?)"},
           json);
    }
    const std::string state = entry.value("state", std::string());
    if (state != "running" && state != "starting") break;
    // A migration still starting has no figures to draw yet.
    if (!json && state == "running") {
      std::fprintf(stderr, "\r%s   ",
                   qemu::formatProgressLine(statusOf(entry), figuresOf(entry)).c_str());
      drawn = true;
    }
    std::this_thread::sleep_for(kWaitPollInterval);
  }
  if (drawn) std::fprintf(stderr, "\n");
  std::string state = entry.value("state", std::string());
  if (json) {
    std::cout << entry.dump(2) << "\n";
  } else if (!entry.contains("start_failure")) {
    // A start that failed moved nothing: its error below says it all.
    std::cerr << qemu::formatSummary(statusOf(entry), figuresOf(entry));
    if (entry.contains("tunnel_error")) {
      std::cerr << "  tunnel error: " << textCell(entry, "tunnel_error") << "\n";
    }
  }
  if (state == "completed") return;
  if (!json) {
    std::cerr << "atoll migration: migration " << id << " " << state << ": "
              << textCell(entry, "error") << "\n";
  }
  throw CLI::RuntimeError(kExitFailure);
}

void runStart(const StartArgs& args) {
  nlohmann::json body{{"qmp", absolutePath("--qmp", args.qmp)}};
  auto peer = transfer::parseEndpoint(args.to);
  if (!peer) usage("--to: " + peer.error().message());
  if (peer->port == 0) usage("--to '" + args.to + "': the peer's port must not be 0");
  body["peer"] = args.to;
  if (!args.tunnelId.empty()) body["tunnel_id"] = args.tunnelId;
  if (args.channels < 1 || args.channels > kMaxChannels) {
    usage("--channels " + std::to_string(args.channels) + ": must be from 1 to " +
          std::to_string(kMaxChannels));
  }
  body["channels"] = args.channels;
  if (!args.bwlimit.empty()) {
    auto rate = transfer::parseRate(args.bwlimit, "--bwlimit");
    if (!rate) usage(rate.error().message());
    if (*rate == 0) {
      usage("--bwlimit '" + args.bwlimit +
            "': QEMU needs a cap above 0 (leave the option out to keep QEMU's own)");
    }
    body["bwlimit"] = *rate;
  }
  if (!args.downtimeLimit.empty()) {
    auto limit = transfer::parseDowntimeLimitMs(args.downtimeLimit, "--downtime-limit");
    if (!limit) usage(limit.error().message());
    body["downtime_limit_ms"] = *limit;
  }
  if (!(args.timeoutSeconds >= 0) || !std::isfinite(args.timeoutSeconds)) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", args.timeoutSeconds);
    usage(std::string("--timeout ") + text + ": must be 0 (none) or more seconds");
  }
  body["timeout_s"] = args.timeoutSeconds;
  body["relay"] = args.relay;

  DaemonConnection startConnection = args.connection;
  startConnection.timeoutSeconds = kStartReplySeconds;
  DaemonClient client(startConnection);
  DaemonReply reply = expectSuccess(client.post("/v1/migrations", body), args.json);
  uint64_t id = reply.body.value("id", uint64_t(0));
  if (!args.wait) {
    if (args.json) {
      std::cout << reply.body.dump() << "\n";
    } else {
      std::cout << id << "\n";
    }
  }
  // 202: the start outlasted the daemon's reply deadline and goes on there;
  // the list (and --wait) tells whether it runs or why it failed.
  const bool starting = reply.status == 202;
  if (starting && !args.json) {
    std::cerr << "atoll migration: migration " << id
              << " starting (`atoll migration list` shows whether it runs)\n";
  } else if (!args.json) {
    std::cerr << "atoll migration: migration " << id << " started (" << textCell(reply.body, "mode")
              << ", tunnel " << textCell(reply.body, "tunnel_id") << ")";
    if (reply.body.contains("hand_off_not_offered")) {
      std::cerr << "; the peer does not offer hand-off ("
                << textCell(reply.body, "hand_off_not_offered") << ")";
    }
    std::cerr << "\n";
  }
  if (!args.wait) return;
  DaemonClient follower(args.connection);
  waitForMigration(follower, id, args.json);
}

std::string mib(uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return text;
}

// Both directions: the migrations this daemon drives, and the destinations
// registered with it for migrations coming in.
void runList(const DaemonArgs& args) {
  DaemonClient client(args.connection);
  DaemonReply outgoing = expectSuccess(client.get("/v1/migrations"), args.json);
  DaemonReply incoming = expectSuccess(client.get("/v1/migrations/incoming"), args.json);
  const nlohmann::json migrations = outgoing.body.value("migrations", nlohmann::json::array());
  const nlohmann::json registered = incoming.body.value("incoming", nlohmann::json::array());
  if (args.json) {
    std::cout << nlohmann::json{{"migrations", migrations}, {"incoming", registered}}.dump(2)
              << "\n";
    return;
  }
  for (const auto& r : registered) {
    std::cout << "incoming " << textCell(r, "tunnel_id") << " (" << textCell(r, "mode") << ") to "
              << (r.contains("qmp") ? textCell(r, "qmp") : textCell(r, "unix")) << ", expires in "
              << textCell(r, "expires_in_s") << " s\n";
  }
  if (migrations.empty()) {
    std::cout << "(no migrations)\n";
    return;
  }
  std::printf("%-4s %-10s %-8s %-10s %23s %10s %10s  %-22s %s\n", "ID", "STATE", "MODE", "QEMU",
              "RAM SENT / TOTAL", "DOWNTIME", "TUNNEL", "PEER", "QMP");
  for (const auto& m : migrations) {
    std::string ram =
        mib(number(m, "ram_transferred_bytes")) + " / " + mib(number(m, "ram_total_bytes"));
    std::string downtime = std::to_string(number(m, "downtime_ms")) + " ms";
    std::string tunnel = mib(number(m.value("tunnel", nlohmann::json::object()), "bytes_to_peer"));
    std::printf("%-4s %-10s %-8s %-10s %23s %10s %10s  %-22s %s\n", textCell(m, "id").c_str(),
                textCell(m, "state").c_str(), textCell(m, "mode").c_str(),
                textCell(m, "status").c_str(), ram.c_str(), downtime.c_str(), tunnel.c_str(),
                textCell(m, "peer").c_str(), textCell(m, "qmp").c_str());
    if (m.contains("error")) std::cout << "     " << textCell(m, "error") << "\n";
  }
}

void runCancel(const DaemonArgs& args) {
  DaemonClient client(args.connection);
  DaemonReply reply =
      expectSuccess(client.remove("/v1/migrations/" + std::to_string(args.id)), args.json);
  if (args.json) {
    std::cout << reply.body.dump() << "\n";
  } else {
    std::cout << "migration " << args.id << ": cancelling (the source VM keeps running)\n";
  }
}

}  // namespace

void addMigrationVerb(CLI::App& app) {
  auto* migration = app.add_subcommand(
      "migration",
      "Live migrations of QEMU VMs carried by atolld on both hosts: the destination's registers "
      "the waiting QEMU, the source's migrates through the tunnel to it");
  migration->require_subcommand(1);

  auto incomingArgs = std::make_shared<IncomingArgs>();
  auto* incoming = migration->add_subcommand(
      "incoming",
      "On the destination host: register the QEMU waiting for a migration with atolld (which "
      "needs [transfer] listen); prints the tunnel id for `atoll migration start --tunnel-id`");
  incoming->add_option("--qmp", incomingArgs->qmp,
                       "QMP unix socket of the destination QEMU started with -incoming defer "
                       "(hand-off: the migration's connection is handed to it)");
  incoming->add_option("--unix", incomingArgs->unixSocket,
                       "The destination QEMU's -incoming unix:PATH socket (relay)");
  incoming
      ->add_option("--expires", incomingArgs->expiresSeconds,
                   "Seconds the registration waits for its migration (1-86400)")
      ->check(kSignedDecimal)
      ->capture_default_str();
  incoming->add_flag("--json", incomingArgs->json, "The daemon's reply as JSON");
  addDaemonOptions(*incoming, incomingArgs->connection);
  incoming->callback([incomingArgs] { runIncoming(*incomingArgs); });

  auto startArgs = std::make_shared<StartArgs>();
  auto* start = migration->add_subcommand(
      "start",
      "On the source host: atolld live-migrates the QEMU behind --qmp through the tunnel to the "
      "peer's atolld (hand-off with one channel where the peer offers it, else relayed); prints "
      "the migration's id. On failure or cancel the source VM keeps running");
  start->add_option("--qmp", startArgs->qmp, "QMP unix socket of the source QEMU")->required();
  start->add_option("--to", startArgs->to, "HOST:PORT of the peer atolld's [transfer] listen")
      ->required();
  start->add_option("--tunnel-id", startArgs->tunnelId,
                    "The id `atoll migration incoming` printed on the destination host");
  start
      ->add_option("--channels", startArgs->channels,
                   "Migration connections: 1, or N > 1 for QEMU multifd with N channels, relayed "
                   "(the destination QEMU needs the multifd capability and the same "
                   "multifd-channels)")
      ->check(kSignedDecimal)
      ->capture_default_str();
  start->add_option("--bwlimit", startArgs->bwlimit,
                    "QEMU's max-bandwidth in bytes/s (k, M, G); without it QEMU's own setting "
                    "stays");
  addDowntimeLimitOption(*start, startArgs->downtimeLimit,
                         "atolld's [transfer] downtime_limit_ms applies (0 there: QEMU's own)");
  start->add_flag("--relay", startArgs->relay,
                  "Relay QEMU's stream through Atoll even where the peer offers hand-off");
  start
      ->add_option("--timeout", startArgs->timeoutSeconds,
                   "atolld cancels the migration after this many seconds (0 = no limit)")
      ->check(kFiniteNumber)
      ->capture_default_str();
  start->add_flag("--wait", startArgs->wait,
                  "Follow the migration (QEMU's progress line) until it ends, then show the "
                  "summary; exits non-zero unless it completed. Ctrl-C stops following only: "
                  "`atoll migration cancel ID` stops the migration");
  start->add_flag("--json", startArgs->json,
                  "The daemon's reply as JSON (with --wait: the migration's final record)");
  // Its --timeout is the migration's own: the daemon's reply waits get fixed bounds.
  addDaemonSocketOption(*start, startArgs->connection);
  start->callback([startArgs] { runStart(*startArgs); });

  auto listArgs = std::make_shared<DaemonArgs>();
  auto* list = migration->add_subcommand(
      "list",
      "Migrations this atolld drives (state, mode, QEMU's figures, tunnel bytes) and the "
      "destinations registered with it for incoming ones");
  list->add_flag("--json", listArgs->json,
                 "{\"migrations\": GET /v1/migrations, \"incoming\": GET /v1/migrations/incoming}");
  addDaemonOptions(*list, listArgs->connection);
  list->callback([listArgs] { runList(*listArgs); });

  auto cancelArgs = std::make_shared<DaemonArgs>();
  auto* cancel = migration->add_subcommand(
      "cancel", "Cancel one of atolld's migrations (migrate_cancel); the source VM keeps running");
  cancel->add_option("ID", cancelArgs->id, "Migration id from `atoll migration list`")
      ->check(kDecimal)
      ->required();
  cancel->add_flag("--json", cancelArgs->json, "The daemon's reply as JSON");
  addDaemonOptions(*cancel, cancelArgs->connection);
  cancel->callback([cancelArgs] { runCancel(*cancelArgs); });
}

}  // namespace Atoll::cli
