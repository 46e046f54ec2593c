#include "migrate/transfer/QemuMigration.h"

#include <sys/random.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "migrate/transfer/StreamTunnel.h"
#include "migrate/transfer/TunnelDestinations.h"
#include "migrate/transfer/TunnelHandOff.h"

namespace Atoll::transfer {

namespace {

using namespace std::chrono_literals;

// After QEMU reports the end, the tunnel's relays see the end of the streams.
constexpr auto kTunnelDrainTimeout = 10s;
// After QEMU reports the end of a hand-off migration, the peer acknowledges
// the last bytes within a round trip; the bound only guards a cut link.
constexpr auto kHandOffDrainTimeout = 2s;

// A moment in microseconds as milliseconds; 0 (not reached) as -1.
double millisecondsOf(int64_t microseconds) {
  return microseconds == 0 ? -1.0 : static_cast<double>(microseconds) / 1000.0;
}

double millisecondsOf(const std::atomic<int64_t>& microseconds) {
  return millisecondsOf(microseconds.load());
}

qemu::TunnelFigures figuresOf(const HandOffSource& handOff, const HandOffBytes& bytes) {
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

qemu::TunnelFigures figuresOf(const TunnelSource& tunnel) {
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

// An id for a tunnel whose source did not name one: random, so that two
// sources migrating to the same peer at once do not share one; never 0.
uint64_t chooseTunnelId() {
  uint64_t id = 0;
  while (id == 0) {
    ssize_t n = ::getrandom(&id, sizeof id, 0);
    if (n == static_cast<ssize_t>(sizeof id)) continue;
    if (n < 0 && errno == EINTR) continue;
    // No random source: the process and the moment still differ between
    // two sources.
    id = (static_cast<uint64_t>(::getpid()) << 32) ^
         static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }
  return id;
}

bool migrating(const std::string& status) {
  return status == "setup" || status == "active" || status == "pre-switchover" ||
         status == "device" || status == "cancelling" || status == "postcopy-active" ||
         status == qemu::kCompletingStatus;
}

}  // namespace

Result<uint64_t> parseDowntimeLimitMs(std::string_view text, std::string_view what) {
  uint64_t milliseconds = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), milliseconds);
  if (ec != std::errc() || text.empty() || end != text.data() + text.size() || milliseconds < 1 ||
      milliseconds > kMaxDowntimeLimitMs) {
    return Error::invalid("parse", std::string(what), std::string(text),
                          "expected whole milliseconds from 1 to " +
                              std::to_string(kMaxDowntimeLimitMs) +
                              " (leave it out for the default)");
  }
  return milliseconds;
}

struct QemuMigration::Parts {
  std::optional<qemu::QmpClient> qmp;
  std::unique_ptr<HandOffSource> handOff;  // hand-off mode
  std::unique_ptr<TunnelSource> tunnel;    // relay mode
  std::string relayDirectory;              // the relay's private directory; empty: none
  bool finished = false;
  qemu::TunnelFigures finalFigures;
  std::string finalTunnelError;
};

QemuMigration::QemuMigration() : parts_(std::make_unique<Parts>()) {}

QemuMigration::~QemuMigration() {
  // The tunnel removes its socket when destroyed; the directory then is empty.
  parts_->tunnel.reset();
  parts_->handOff.reset();
  if (!parts_->relayDirectory.empty()) ::rmdir(parts_->relayDirectory.c_str());
}

QemuMigration::Started QemuMigration::start(const QemuMigrationRequest& request,
                                            std::chrono::milliseconds qmpReplyTimeout) {
  auto refuse = [](MigrationStartFailure failure, std::string message) {
    return Started{nullptr, failure, std::move(message)};
  };
  if (request.qmpSocket.empty()) {
    return refuse(MigrationStartFailure::kInvalid, "no QMP socket of the source QEMU is named");
  }
  if (request.channels < 1 || request.channels > kMaxMigrationChannels) {
    return refuse(MigrationStartFailure::kInvalid, "channels " + std::to_string(request.channels) +
                                                       ": must be from 1 to " +
                                                       std::to_string(kMaxMigrationChannels));
  }
  if (request.peer.host.empty() || request.peer.port == 0) {
    return refuse(MigrationStartFailure::kInvalid,
                  "the peer '" + request.peer.text() + "': needs a host and a port other than 0");
  }
  // QmpClient waits for a socket QEMU has yet to create; a migration is
  // asked of a running QEMU, so a missing socket is reported at once.
  if (::access(request.qmpSocket.c_str(), F_OK) != 0) {
    return refuse(MigrationStartFailure::kQemuUnreachable,
                  "no QMP socket at " + request.qmpSocket + ": " + std::strerror(errno) +
                      " (is the source QEMU running with -qmp unix:" + request.qmpSocket +
                      ",server=on?)");
  }

  std::unique_ptr<QemuMigration> migration(new QemuMigration());
  Parts& parts = *migration->parts_;
  migration->channels_ = request.channels;
  migration->tunnelId_ = request.tunnelId != 0 ? request.tunnelId : chooseTunnelId();
  const std::string idText = tunnelIdText(migration->tunnelId_);

  auto connected = qemu::QmpClient::connect(request.qmpSocket, qmpReplyTimeout);
  if (!connected) {
    return refuse(MigrationStartFailure::kQemuUnreachable,
                  "cannot talk to the source QEMU's QMP socket " + request.qmpSocket + ": " +
                      connected.error().message());
  }
  parts.qmp.emplace(std::move(*connected));
  qemu::QmpClient& qmp = *parts.qmp;
  auto before = qmp.queryMigrate();
  if (!before) {
    return refuse(MigrationStartFailure::kRefused,
                  "QEMU at " + request.qmpSocket +
                      " did not report its migration state: " + before.error().message());
  }
  if (migrating(before->status)) {
    return refuse(
        MigrationStartFailure::kRefused,
        "QEMU at " + request.qmpSocket + " is already migrating (status '" + before->status + "')");
  }

  bool multifd = request.channels > 1;
  auto capability = qmp.execute(
      "migrate-set-capabilities",
      {{"capabilities", nlohmann::json::array({{{"capability", "multifd"}, {"state", multifd}}})}});
  if (!capability) {
    return refuse(MigrationStartFailure::kRefused,
                  "QEMU at " + request.qmpSocket + " refused multifd " + (multifd ? "on" : "off") +
                      " (" + std::to_string(request.channels) +
                      " channels): " + qemuSaid(capability.error()));
  }
  if (multifd) {
    auto parameters =
        qmp.execute("migrate-set-parameters", {{"multifd-channels", request.channels}});
    if (!parameters) {
      return refuse(MigrationStartFailure::kRefused,
                    "QEMU at " + request.qmpSocket + " refused multifd-channels " +
                        std::to_string(request.channels) + ": " + qemuSaid(parameters.error()));
    }
  }
  if (request.bandwidth > 0) {
    auto parameters = qmp.execute("migrate-set-parameters", {{"max-bandwidth", request.bandwidth}});
    if (!parameters) {
      return refuse(MigrationStartFailure::kRefused,
                    "QEMU at " + request.qmpSocket + " refused max-bandwidth " +
                        std::to_string(request.bandwidth) +
                        " bytes/s: " + qemuSaid(parameters.error()));
    }
  }
  if (request.downtimeLimitMs > 0) {
    auto parameters =
        qmp.execute("migrate-set-parameters", {{"downtime-limit", request.downtimeLimitMs}});
    if (!parameters) {
      return refuse(MigrationStartFailure::kRefused, "QEMU at " + request.qmpSocket +
                                                         " refused downtime-limit " +
                                                         std::to_string(request.downtimeLimitMs) +
                                                         " ms: " + qemuSaid(parameters.error()));
    }
  }

  // Hand-off first where QEMU can take the connection itself; a peer that
  // does not offer it is answered by the relay.
  if (!request.relay && request.channels == 1) {
    auto attempt = HandOffSource::prepare(request.peer, migration->tunnelId_, request.socket);
    if (!attempt) {
      return refuse(MigrationStartFailure::kPeerUnreachable,
                    "cannot hand a connection to the destination QEMU through the peer " +
                        request.peer.text() + " (tunnel id " + idText +
                        "): " + attempt.error().message() +
                        " (the peer runs `atoll transfer serve --tunnel-qmp SOCKET`, or a daemon "
                        "with the destination registered under that tunnel id, and the "
                        "destination QEMU waits with -incoming defer)");
    }
    parts.handOff = std::move(attempt->source);
    if (!parts.handOff) migration->handOffNotOffered_ = attempt->notOffered;
  }

  std::string relaySocket;
  if (!parts.handOff) {
    std::string parent = request.relayParent;
    if (parent.empty()) {
      const char* tmpdir = ::getenv("TMPDIR");
      parent = tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp";
    }
    std::string pattern = parent + "/atoll-migrate-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      return refuse(MigrationStartFailure::kRefused, "cannot make the relay's directory: mkdtemp " +
                                                         pattern + ": " + std::strerror(errno));
    }
    parts.relayDirectory = pattern;
    relaySocket = pattern + "/qemu.sock";
    auto created =
        TunnelSource::create(relaySocket, request.peer, migration->tunnelId_, request.socket);
    if (!created) {
      return refuse(MigrationStartFailure::kRefused,
                    "cannot listen for QEMU's migration stream: " + created.error().message());
    }
    parts.tunnel = std::move(*created);
    // With multifd QEMU opens its main channel and then one per multifd channel.
    uint32_t connections = multifd ? request.channels + 1 : 1;
    if (auto prepared = parts.tunnel->prepare(connections); !prepared) {
      std::string fallback = migration->handOffNotOffered_.empty()
                                 ? ""
                                 : "the peer does not offer hand-off (" +
                                       migration->handOffNotOffered_ + "); relaying: ";
      return refuse(MigrationStartFailure::kPeerUnreachable,
                    fallback + "cannot reach the destination QEMU through the peer " +
                        request.peer.text() + " (tunnel id " + idText +
                        "): " + prepared.error().message() +
                        " (the peer runs `atoll transfer serve --tunnel-to unix:PATH`, or a daemon "
                        "with a relay destination registered under that tunnel id, and the "
                        "destination QEMU listens with -incoming unix:PATH)");
    }
    parts.tunnel->start();
  }

  auto started = parts.handOff ? parts.handOff->migrate(qmp) : qmp.migrate("unix:" + relaySocket);
  if (!started) {
    return refuse(MigrationStartFailure::kRefused,
                  "QEMU at " + request.qmpSocket +
                      " refused to migrate: " + qemuSaid(started.error()) +
                      (multifd ? " (multifd needs the destination QEMU to have the multifd "
                                 "capability and the same multifd-channels)"
                               : ""));
  }
  migration->mode_ = parts.handOff ? "hand-off" : "relay";
  return Started{std::move(migration), MigrationStartFailure::kRefused, ""};
}

Result<qemu::MigrationStatus> QemuMigration::poll() {
  return parts_->qmp->queryMigrate();
}

qemu::TunnelFigures QemuMigration::figures() const {
  if (parts_->finished) return parts_->finalFigures;
  if (parts_->handOff) return figuresOf(*parts_->handOff, parts_->handOff->bytes());
  return figuresOf(*parts_->tunnel);
}

Result<void> QemuMigration::cancel() {
  auto cancelled = parts_->qmp->execute("migrate_cancel");
  if (!cancelled) return cancelled.error();
  return ok();
}

qemu::TunnelFigures QemuMigration::finish() {
  if (parts_->finished) return parts_->finalFigures;
  if (parts_->handOff) {
    // QEMU closed its copy; closing Atoll's ends the connection.
    parts_->finalFigures =
        figuresOf(*parts_->handOff, parts_->handOff->finish(kHandOffDrainTimeout));
  } else {
    // QEMU has sent its last byte; the relays end once both sides close.
    TunnelSource& tunnel = *parts_->tunnel;
    for (auto deadline = std::chrono::steady_clock::now() + kTunnelDrainTimeout;
         tunnel.stats().open.load() > 0 && std::chrono::steady_clock::now() < deadline;)
      std::this_thread::sleep_for(10ms);
    tunnel.stop();
    parts_->finalFigures = figuresOf(tunnel);
    parts_->finalTunnelError = tunnel.lastError();
  }
  parts_->finished = true;
  return parts_->finalFigures;
}

std::string QemuMigration::tunnelError() const {
  if (parts_->finished) return parts_->finalTunnelError;
  return parts_->tunnel ? parts_->tunnel->lastError() : std::string();
}

}  // namespace Atoll::transfer
