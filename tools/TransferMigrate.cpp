// atoll transfer migrate: the source host's side of a live migration through
// the tunnel, in one of two modes.
//   hand-off (the default with one channel): Atoll connects to the peer's
//     `atoll transfer serve --tunnel-qmp SOCKET`, which hands its end to the
//     destination QEMU (`-incoming defer`, then `migrate-incoming fd:NAME`);
//     this end goes to the source QEMU (`getfd`, `migrate fd:NAME`). QEMU then
//     migrates over that TCP connection itself, at the cost of its own TCP
//     migration; Atoll only reads the kernel's byte counts. A peer that does
//     not offer hand-off (no --tunnel-qmp, or TLS) is answered by the relay.
//   relay (--relay, and multifd with --channels > 1, which QEMU 7.2 takes only
//     over sockets it opens itself): QEMU migrates to a unix socket of a
//     private temporary directory; the tunnel carries each of QEMU's
//     connections over TCP to the peer's `atoll transfer serve --tunnel-to`,
//     which connects them to the destination QEMU's `-incoming unix:PATH`.
// Either way the connections through the peer are made before QEMU is told
// to migrate, so an unreachable peer or a destination that does not listen
// is reported before the migration starts, and the migration does not wait
// for them.
#include "tools/TransferMigrate.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "migrate/qemu/MigrationReport.h"
#include "migrate/qemu/QmpClient.h"
#include "migrate/transfer/Rate.h"
#include "migrate/transfer/StreamTunnel.h"
#include "migrate/transfer/TunnelHandOff.h"
#include "tools/Verbs.h"

namespace Atoll::cli {

namespace {

using namespace std::chrono_literals;

// QEMU's multifd accepts up to 255 channels; beyond a few dozen they only
// add connections, and each one here is a TCP connection and two threads.
constexpr int64_t kMaxChannels = 64;
constexpr auto kQmpReplyTimeout = 10s;
constexpr auto kPollInterval = 250ms;
// After `migrate_cancel`, QEMU normally reports "cancelled" within a moment.
constexpr auto kCancelGrace = 15s;
// After QEMU reports the end, the tunnel's relays see the end of the streams.
constexpr auto kTunnelDrainTimeout = 10s;
// After QEMU reports the end of a hand-off migration, the peer acknowledges
// the last bytes within a round trip; the bound only guards a cut link.
constexpr auto kHandOffDrainTimeout = 2s;

struct MigrateArgs {
  std::string qmpSocket;
  std::string to;
  int64_t channels = 1;
  std::string bwlimit;
  double timeoutSeconds = 0;
  bool relay = false;
  bool json = false;
};

// The options once checked: nothing is touched before all of them are.
struct MigratePlan {
  transfer::Endpoint peer;
  uint32_t channels = 1;
  uint64_t bandwidth = 0;                // 0: QEMU's own max-bandwidth stays
  std::chrono::milliseconds timeout{0};  // 0: none
};

[[noreturn]] void fail(const std::string& message, ExitCode code) {
  std::cerr << "atoll transfer migrate: " << message << "\n";
  throw CLI::RuntimeError(code);
}

// "1.5", "-1", "30": as the operator wrote it, without trailing zeros.
std::string seconds(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  return text;
}

MigratePlan checkOptions(const MigrateArgs& args) {
  MigratePlan plan;
  auto peer = transfer::parseEndpoint(args.to);
  if (!peer) fail("--to: " + peer.error().message(), kExitUsage);
  if (peer->port == 0) fail("--to '" + args.to + "': the peer's port must not be 0", kExitUsage);
  plan.peer = *peer;
  if (args.channels < 1 || args.channels > kMaxChannels) {
    fail("--channels " + std::to_string(args.channels) + ": must be from 1 to " +
             std::to_string(kMaxChannels),
         kExitUsage);
  }
  plan.channels = static_cast<uint32_t>(args.channels);
  if (!args.bwlimit.empty()) {
    auto rate = transfer::parseRate(args.bwlimit, "--bwlimit");
    if (!rate) fail(rate.error().message(), kExitUsage);
    if (*rate == 0) {
      fail("--bwlimit '" + args.bwlimit +
               "': QEMU needs a cap above 0 (leave the option out "
               "to keep QEMU's own)",
           kExitUsage);
    }
    plan.bandwidth = *rate;
  }
  if (!(args.timeoutSeconds >= 0)) {
    fail("--timeout " + seconds(args.timeoutSeconds) + ": must be 0 (none) or more seconds",
         kExitUsage);
  }
  plan.timeout = std::chrono::milliseconds(static_cast<int64_t>(args.timeoutSeconds * 1000));
  if (args.qmpSocket.empty()) fail("--qmp: the source QEMU's QMP socket is required", kExitUsage);
  return plan;
}

// A private directory for the tunnel's socket, removed with it.
class PrivateDirectory {
 public:
  PrivateDirectory() {
    const char* base = ::getenv("TMPDIR");
    std::string pattern =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/atoll-migrate-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      fail("mkdtemp " + pattern + ": " + std::strerror(errno), kExitFailure);
    }
    path_ = pattern;
  }
  ~PrivateDirectory() { ::rmdir(path_.c_str()); }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::atomic<bool> interruptRequested{false};

void onInterrupt(int) {
  interruptRequested = true;
}

// Without SA_RESTART, so a wait on QEMU's reply returns to the loop at once.
void catchInterrupts() {
  struct sigaction action {};
  action.sa_handler = onInterrupt;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
}

// A moment in microseconds as milliseconds; 0 (not reached) as -1.
double millisecondsOf(int64_t microseconds) {
  return microseconds == 0 ? -1.0 : static_cast<double>(microseconds) / 1000.0;
}

double millisecondsOf(const std::atomic<int64_t>& microseconds) {
  return millisecondsOf(microseconds.load());
}

qemu::TunnelFigures figuresOf(const transfer::HandOffSource& handOff,
                              const transfer::HandOffBytes& bytes) {
  qemu::TunnelFigures figures;
  figures.mode = "hand-off";
  figures.bytesToPeer = bytes.sent;
  figures.bytesFromPeer = bytes.received;
  figures.connections = 1;
  const auto& timeline = handOff.timeline();
  figures.peerAckedMs = millisecondsOf(timeline.peerAckedUs);
  figures.localAcceptedMs = millisecondsOf(timeline.passedUs);
  return figures;
}

qemu::TunnelFigures figuresOf(const transfer::TunnelSource& tunnel) {
  const auto& stats = tunnel.stats();
  const auto& timeline = tunnel.timeline();
  qemu::TunnelFigures figures;
  figures.bytesToPeer = stats.bytesToPeer;
  figures.bytesFromPeer = stats.bytesFromPeer;
  figures.connections = stats.connections;
  figures.peerAckedMs = millisecondsOf(timeline.peerAckedUs);
  figures.localAcceptedMs = millisecondsOf(timeline.localAcceptedUs);
  figures.firstByteMs = millisecondsOf(timeline.firstByteUs);
  figures.lastByteMs = millisecondsOf(timeline.lastByteUs);
  figures.closedMs = millisecondsOf(timeline.closedUs);
  return figures;
}

// QEMU's description of a refused QMP command, without the request echoed.
std::string qemuSaid(const Error& error) {
  return error.detail.empty() ? error.message() : error.detail;
}

// Sets QEMU's migration capabilities and parameters for this migration.
void configureQemu(qemu::QmpClient& qmp, const MigrateArgs& args, const MigratePlan& plan) {
  bool multifd = plan.channels > 1;
  auto capability = qmp.execute(
      "migrate-set-capabilities",
      {{"capabilities", nlohmann::json::array({{{"capability", "multifd"}, {"state", multifd}}})}});
  if (!capability) {
    fail("QEMU at " + args.qmpSocket + " refused multifd " + (multifd ? "on" : "off") +
             " (--channels " + std::to_string(plan.channels) + "): " + qemuSaid(capability.error()),
         kExitFailure);
  }
  if (multifd) {
    auto parameters = qmp.execute("migrate-set-parameters", {{"multifd-channels", plan.channels}});
    if (!parameters) {
      fail("QEMU at " + args.qmpSocket + " refused multifd-channels " +
               std::to_string(plan.channels) + ": " + qemuSaid(parameters.error()),
           kExitFailure);
    }
  }
  if (plan.bandwidth > 0) {
    auto parameters = qmp.execute("migrate-set-parameters", {{"max-bandwidth", plan.bandwidth}});
    if (!parameters) {
      fail("QEMU at " + args.qmpSocket + " refused max-bandwidth " +
               std::to_string(plan.bandwidth) + " (--bwlimit " + args.bwlimit +
               "): " + qemuSaid(parameters.error()),
           kExitFailure);
    }
  }
}

void runMigrate(const MigrateArgs& args) {
  MigratePlan plan = checkOptions(args);

  // QmpClient waits for a socket QEMU has yet to create; a CLI is pointed at
  // a running QEMU, so a missing socket is reported at once.
  if (::access(args.qmpSocket.c_str(), F_OK) != 0) {
    fail("no QMP socket at " + args.qmpSocket + ": " + std::strerror(errno) +
             " (is the source QEMU running with -qmp unix:" + args.qmpSocket + ",server=on?)",
         kExitUnavailable);
  }
  auto connected = qemu::QmpClient::connect(args.qmpSocket, kQmpReplyTimeout);
  if (!connected) {
    fail("cannot talk to the source QEMU's QMP socket " + args.qmpSocket + ": " +
             connected.error().message(),
         kExitUnavailable);
  }
  qemu::QmpClient& qmp = *connected;
  auto before = qmp.queryMigrate();
  if (!before) fail(before.error().message(), kExitFailure);
  if (before->status == "setup" || before->status == "active" ||
      before->status == "pre-switchover" || before->status == "device" ||
      before->status == "cancelling" || before->status == "postcopy-active") {
    fail("QEMU at " + args.qmpSocket + " is already migrating (status '" + before->status + "')",
         kExitFailure);
  }
  configureQemu(qmp, args, plan);

  uint64_t tunnelId =
      (static_cast<uint64_t>(::getpid()) << 32) ^
      static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  std::unique_ptr<transfer::HandOffSource> handOff;
  std::string handOffNotOffered;
  if (!args.relay && plan.channels == 1) {
    auto attempt = transfer::HandOffSource::prepare(plan.peer, tunnelId, transfer::SocketOptions{});
    if (!attempt) {
      fail("cannot hand a connection to the destination QEMU through the peer " + plan.peer.text() +
               ": " + attempt.error().message() +
               " (the peer runs `atoll transfer serve --tunnel-qmp SOCKET` and the destination "
               "QEMU waits with -incoming defer; --relay uses --tunnel-to instead)",
           kExitUnavailable);
    }
    handOff = std::move(attempt->source);
    handOffNotOffered = attempt->notOffered;
    if (!handOff) {
      std::cerr << "atoll transfer migrate: the peer " << plan.peer.text()
                << " does not offer hand-off (" << handOffNotOffered << "); relaying instead\n";
    }
  }

  // The relay, when no hand-off was prepared.
  std::optional<PrivateDirectory> directory;
  std::unique_ptr<transfer::TunnelSource> tunnel;
  if (!handOff) {
    directory.emplace();
    std::string socketPath = directory->file("qemu.sock");
    auto created =
        transfer::TunnelSource::create(socketPath, plan.peer, tunnelId, transfer::SocketOptions{});
    if (!created) fail(created.error().message(), kExitFailure);
    tunnel = std::move(*created);
    // With multifd QEMU opens its main channel and then one per multifd channel.
    uint32_t connections = plan.channels > 1 ? plan.channels + 1 : 1;
    if (auto prepared = tunnel->prepare(connections); !prepared) {
      fail("cannot reach the destination QEMU through the peer " + plan.peer.text() + ": " +
               prepared.error().message() +
               " (the peer runs `atoll transfer serve --tunnel-to unix:PATH` and the destination "
               "QEMU listens with -incoming unix:PATH)",
           kExitUnavailable);
    }
    tunnel->start();
  }
  catchInterrupts();

  auto started =
      handOff ? handOff->migrate(qmp) : qmp.migrate("unix:" + directory->file("qemu.sock"));
  if (!started) {
    fail("QEMU at " + args.qmpSocket + " refused to migrate: " + qemuSaid(started.error()) +
             (plan.channels > 1 ? " (multifd needs the destination QEMU to have the multifd "
                                  "capability and the same multifd-channels)"
                                : ""),
         kExitFailure);
  }
  auto figuresNow = [&] {
    return handOff ? figuresOf(*handOff, handOff->bytes()) : figuresOf(*tunnel);
  };

  auto startedAt = std::chrono::steady_clock::now();
  std::optional<std::chrono::steady_clock::time_point> cancelledAt;
  std::string cancelReason;
  qemu::MigrationStatus status;
  bool drawn = false;
  for (;;) {
    auto report = qmp.queryMigrate();
    if (!report) fail(report.error().message(), kExitFailure);
    status = *report;
    if (status.finished()) break;
    if (!args.json) {
      std::fprintf(stderr, "\r%s   ", qemu::formatProgressLine(status, figuresNow()).c_str());
      drawn = true;
    }
    auto now = std::chrono::steady_clock::now();
    bool timedOut = plan.timeout.count() > 0 && now - startedAt >= plan.timeout;
    if (!cancelledAt && (interruptRequested || timedOut)) {
      cancelReason = interruptRequested
                         ? "interrupted"
                         : "not finished within --timeout " + seconds(args.timeoutSeconds) + " s";
      auto cancel = qmp.execute("migrate_cancel");
      if (!cancel) fail(cancel.error().message(), kExitFailure);
      cancelledAt = now;
    }
    if (cancelledAt && now - *cancelledAt > kCancelGrace) {
      fail(cancelReason + "; QEMU at " + args.qmpSocket + " still reports '" + status.status +
               "' after migrate_cancel",
           kExitFailure);
    }
    std::this_thread::sleep_for(kPollInterval);
  }
  if (drawn) std::fprintf(stderr, "\n");

  qemu::TunnelFigures figures;
  std::string tunnelError;
  if (handOff) {
    // QEMU closed its copy; closing Atoll's ends the connection.
    figures = figuresOf(*handOff, handOff->finish(kHandOffDrainTimeout));
  } else {
    // QEMU has sent its last byte; the relays end once both sides close.
    for (auto deadline = std::chrono::steady_clock::now() + kTunnelDrainTimeout;
         tunnel->stats().open.load() > 0 && std::chrono::steady_clock::now() < deadline;)
      std::this_thread::sleep_for(10ms);
    tunnel->stop();
    figures = figuresOf(*tunnel);
    tunnelError = tunnel->lastError();
  }

  if (args.json) {
    nlohmann::json summary = qemu::summaryJson(status, figures);
    summary["channels"] = plan.channels;
    summary["mode"] = figures.mode;
    if (!handOffNotOffered.empty()) summary["hand_off_not_offered"] = handOffNotOffered;
    if (!cancelReason.empty()) summary["cancel_reason"] = cancelReason;
    if (!tunnelError.empty()) summary["tunnel_error"] = tunnelError;
    std::cout << summary.dump() << std::endl;
  } else {
    std::cerr << qemu::formatSummary(status, figures);
    if (!tunnelError.empty()) std::cerr << "  tunnel error: " << tunnelError << "\n";
  }
  if (status.succeeded()) return;
  if (!cancelReason.empty()) {
    fail(cancelReason + ": migration " + status.status + "; the source VM keeps running",
         kExitFailure);
  }
  fail("migration failed: " +
           (status.errorDescription.empty() ? std::string("QEMU gave no reason")
                                            : status.errorDescription) +
           (plan.channels > 1 ? " (with --channels > 1 the destination QEMU needs the multifd "
                                "capability and multifd-channels " +
                                    std::to_string(plan.channels) + " too)"
                              : "") +
           "; the source VM keeps running",
       kExitFailure);
}

}  // namespace

void addTransferMigrateSubcommand(CLI::App& transfer) {
  auto args = std::make_shared<MigrateArgs>();
  auto* migrate = transfer.add_subcommand(
      "migrate",
      "Live-migrate a QEMU VM from this host through the tunnel to a peer running `atoll "
      "transfer serve`. By default (one channel) the connection Atoll makes to the peer is "
      "handed to both QEMUs (hand-off: the peer needs --tunnel-qmp SOCKET, the destination QEMU "
      "-incoming defer), so the migration costs what QEMU's own TCP migration costs; a peer "
      "without hand-off is answered by relaying (its --tunnel-to unix:PATH, destination QEMU "
      "-incoming unix:PATH). --relay and --channels > 1 always relay. Shows QEMU's progress "
      "(pass, RAM, rate, dirty rate, ETA) and the tunnel's bytes; --json says which mode ran. "
      "The tunnel is plaintext TCP: use a trusted migration network. On failure or interrupt "
      "the source VM keeps running");
  migrate->add_option("--qmp", args->qmpSocket, "QMP unix socket of the source QEMU")->required();
  migrate->add_option("--to", args->to, "HOST:PORT of the peer's `atoll transfer serve`")
      ->required();
  migrate
      ->add_option("--channels", args->channels,
                   "Migration connections: 1, or N > 1 for QEMU multifd with N channels (the "
                   "destination QEMU must have the multifd capability and the same "
                   "multifd-channels set before the migration)")
      ->capture_default_str();
  migrate->add_option("--bwlimit", args->bwlimit,
                      "QEMU's max-bandwidth in bytes/s (k, M, G); without it QEMU's own setting "
                      "stays");
  migrate
      ->add_option("--timeout", args->timeoutSeconds,
                   "Cancel the migration after this many seconds (0 = no limit)")
      ->capture_default_str();
  migrate->add_flag("--relay", args->relay,
                    "Relay QEMU's stream through Atoll (peer: --tunnel-to) instead of handing "
                    "the connection to QEMU");
  migrate->add_flag("--json", args->json, "One JSON object with the summary on stdout");
  migrate->callback([args] { runMigrate(*args); });
}

}  // namespace Atoll::cli
