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
// The steps themselves are QemuMigration's (migrate/transfer/QemuMigration.h),
// which the daemon runs too; this verb checks the options, draws the
// progress, cancels at --timeout or on an interrupt and reports. --tunnel-id
// names the destination a peer daemon registered (TunnelDestinations.h).
#include "tools/TransferMigrate.h"

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "migrate/qemu/MigrationReport.h"
#include "migrate/transfer/QemuMigration.h"
#include "migrate/transfer/Rate.h"
#include "migrate/transfer/TunnelDestinations.h"
#include "runtime/MigrationRequests.h"
#include "tools/NumberOptions.h"
#include "tools/Verbs.h"

namespace Atoll::cli {

namespace {

using namespace std::chrono_literals;

constexpr auto kQmpReplyTimeout = 10s;
constexpr auto kPollInterval = 250ms;
// After `migrate_cancel`, QEMU normally reports "cancelled" within a moment.
constexpr auto kCancelGrace = 15s;

struct MigrateArgs {
  std::string qmpSocket;
  std::string to;
  std::string tunnelId;
  int64_t channels = 1;
  std::string bwlimit;
  std::string downtimeLimit;
  double timeoutSeconds = 0;
  bool relay = false;
  bool json = false;
};

// The options once checked: nothing is touched before all of them are.
struct MigratePlan {
  transfer::QemuMigrationRequest request;
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
  transfer::QemuMigrationRequest& request = plan.request;
  auto peer = transfer::parseEndpoint(args.to);
  if (!peer) fail("--to: " + peer.error().message(), kExitUsage);
  if (peer->port == 0) fail("--to '" + args.to + "': the peer's port must not be 0", kExitUsage);
  request.peer = *peer;
  if (!args.tunnelId.empty()) {
    auto id = transfer::parseTunnelId(args.tunnelId);
    if (!id) fail("--tunnel-id: " + id.error().message(), kExitUsage);
    request.tunnelId = *id;
  }
  if (args.channels < 1 || args.channels > transfer::kMaxMigrationChannels) {
    fail("--channels " + std::to_string(args.channels) + ": must be from 1 to " +
             std::to_string(transfer::kMaxMigrationChannels),
         kExitUsage);
  }
  request.channels = static_cast<uint32_t>(args.channels);
  if (!args.bwlimit.empty()) {
    auto rate = transfer::parseRate(args.bwlimit, "--bwlimit");
    if (!rate) fail(rate.error().message(), kExitUsage);
    if (*rate == 0) {
      fail("--bwlimit '" + args.bwlimit +
               "': QEMU needs a cap above 0 (leave the option out "
               "to keep QEMU's own)",
           kExitUsage);
    }
    request.bandwidth = *rate;
  }
  if (!args.downtimeLimit.empty()) {
    auto limit = transfer::parseDowntimeLimitMs(args.downtimeLimit, "--downtime-limit");
    if (!limit) fail(limit.error().message(), kExitUsage);
    request.downtimeLimitMs = *limit;
  }
  request.relay = args.relay;
  // The daemon's bound for the same timeout: beyond it the milliseconds
  // below would overflow.
  if (!(args.timeoutSeconds >= 0) || args.timeoutSeconds > kMaxMigrationTimeoutSeconds) {
    fail("--timeout " + seconds(args.timeoutSeconds) + ": must be from 0 (none) to " +
             seconds(kMaxMigrationTimeoutSeconds) + " seconds",
         kExitUsage);
  }
  // A timeout under a millisecond is still one: 0 means none.
  const auto ms = static_cast<int64_t>(args.timeoutSeconds * 1000);
  plan.timeout = std::chrono::milliseconds(args.timeoutSeconds > 0 ? std::max<int64_t>(ms, 1) : 0);
  if (args.qmpSocket.empty()) fail("--qmp: the source QEMU's QMP socket is required", kExitUsage);
  request.qmpSocket = args.qmpSocket;
  return plan;
}

ExitCode exitCodeOf(transfer::MigrationStartFailure failure) {
  switch (failure) {
    case transfer::MigrationStartFailure::kInvalid:
      return kExitUsage;
    case transfer::MigrationStartFailure::kQemuUnreachable:
    case transfer::MigrationStartFailure::kPeerUnreachable:
      return kExitUnavailable;
    case transfer::MigrationStartFailure::kRefused:
      break;
  }
  return kExitFailure;
}

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

void runMigrate(const MigrateArgs& args) {
  MigratePlan plan = checkOptions(args);
  const uint32_t channels = plan.request.channels;

  auto started = transfer::QemuMigration::start(plan.request, kQmpReplyTimeout);
  if (!started.migration) fail(started.message, exitCodeOf(started.failure));
  transfer::QemuMigration& migration = *started.migration;
  if (!migration.handOffNotOffered().empty()) {
    std::cerr << "atoll transfer migrate: the peer " << plan.request.peer.text()
              << " does not offer hand-off (" << migration.handOffNotOffered()
              << "); relaying instead\n";
  }
  catchInterrupts();

  auto startedAt = std::chrono::steady_clock::now();
  std::optional<std::chrono::steady_clock::time_point> cancelledAt;
  std::string cancelReason;
  qemu::MigrationStatus status;
  bool drawn = false;
  for (;;) {
    auto report = migration.poll();
    if (!report) fail(report.error().message(), kExitFailure);
    status = *report;
    if (status.finished()) break;
    if (!args.json) {
      std::fprintf(stderr, "\r%s   ",
                   qemu::formatProgressLine(status, migration.figures()).c_str());
      drawn = true;
    }
    auto now = std::chrono::steady_clock::now();
    bool timedOut = plan.timeout.count() > 0 && now - startedAt >= plan.timeout;
    if (!cancelledAt && (interruptRequested || timedOut)) {
      cancelReason = interruptRequested
                         ? "interrupted"
                         : "not finished within --timeout " + seconds(args.timeoutSeconds) + " s";
      auto cancel = migration.cancel();
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

  qemu::TunnelFigures figures = migration.finish();
  std::string tunnelError = migration.tunnelError();

  if (args.json) {
    nlohmann::json summary = qemu::summaryJson(status, figures);
    summary["channels"] = channels;
    summary["mode"] = figures.mode;
    if (!migration.handOffNotOffered().empty()) {
      summary["hand_off_not_offered"] = migration.handOffNotOffered();
    }
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
           (channels > 1 ? " (with --channels > 1 the destination QEMU needs the multifd "
                           "capability and multifd-channels " +
                               std::to_string(channels) + " too)"
                         : "") +
           "; the source VM keeps running",
       kExitFailure);
}

}  // namespace

CLI::Option* addDowntimeLimitOption(CLI::App& command, std::string& into,
                                    std::string_view without) {
  return command
      .add_option("--downtime-limit", into,
                  "QEMU's downtime-limit in milliseconds (1-" +
                      std::to_string(transfer::kMaxDowntimeLimitMs) +
                      "): pre-copy stops the guest once the rest fits into this time at the "
                      "measured rate, so below QEMU's own (300) the guest's pause is shorter "
                      "and the migration may take longer. Without it " +
                      std::string(without))
      ->type_name("MS");
}

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
      ->check(kSignedDecimal)
      ->capture_default_str();
  migrate->add_option("--bwlimit", args->bwlimit,
                      "QEMU's max-bandwidth in bytes/s (k, M, G); without it QEMU's own setting "
                      "stays");
  addDowntimeLimitOption(*migrate, args->downtimeLimit);
  migrate
      ->add_option("--timeout", args->timeoutSeconds,
                   "Cancel the migration after this many seconds (0 = no limit)")
      ->check(kFiniteNumber)
      ->capture_default_str();
  migrate
      ->add_option("--tunnel-id", args->tunnelId,
                   "The tunnel id a peer daemon registered the destination QEMU under (1-16 "
                   "hexadecimal digits); without it an id is chosen and the peer serves its "
                   "fixed destination")
      ->type_name("HEX");
  migrate->add_flag("--relay", args->relay,
                    "Relay QEMU's stream through Atoll (peer: --tunnel-to) instead of handing "
                    "the connection to QEMU");
  migrate->add_flag("--json", args->json, "One JSON object with the summary on stdout");
  migrate->callback([args] { runMigrate(*args); });
}

}  // namespace Atoll::cli
