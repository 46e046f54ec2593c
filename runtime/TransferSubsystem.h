#pragma once
// The transfer engine inside atolld: image pre-copy to peers requested
// through the API (POST /v1/transfers), the receiving endpoint when
// [transfer] listen is set, and one host-wide bandwidth cap shared fairly
// (max-min) among every transfer running at once, sent or received, that can
// change while they run (PUT /v1/transfers/host-bwlimit, or a reload).
//
// Each transfer runs on a thread of its own; the tick never waits for one
// (the subsystem runs in no phase). Cancelling shuts the transfer's socket
// down and wakes its pacing, so it ends within moments even under a low cap;
// the receiver keeps what it verified, and the same request later resumes.
//
// With [transfer] cpus set, every transfer side, sent or received, runs on
// one of those CPUs (the one running fewest of the daemon's transfers): bulk
// copies stay off the CPUs islands give to VMs, and each block stays in one
// CPU's caches from socket to disk.
//
// Live migrations of QEMU VMs go through the same engine, both ends: the
// destination host registers the QEMU waiting for one (POST
// /v1/migrations/incoming) and its receiving endpoint serves the tunnel
// the source names by id; the source host drives the migration (POST
// /v1/migrations, MigrationJobs.h).
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "migrate/transfer/Bandwidth.h"
#include "migrate/transfer/Net.h"
#include "migrate/transfer/TlsChannel.h"
#include "migrate/transfer/TransferCpus.h"
#include "migrate/transfer/TransferServer.h"
#include "migrate/transfer/TunnelDestinations.h"
#include "runtime/Config.h"
#include "runtime/MigrationJobs.h"
#include "runtime/Subsystem.h"

namespace Atoll {

inline constexpr uint32_t kMaxTransferRounds = 100;

// What POST /v1/transfers asks for, validated.
struct TransferRequest {
  std::string file;  // absolute path of the source file or block device
  transfer::Endpoint peer;
  std::string name;        // under the peer's staging directory; default: the file's name
  uint64_t bandwidth = 0;  // this transfer's own cap in bytes/s; 0: the host's share only
  uint32_t rounds = 1;     // most pre-copy rounds, the final one included
  std::chrono::milliseconds downtimeBudget{300};
};

// The body of POST /v1/transfers: a JSON object
//   {"file": "/abs/path", "peer": "HOST:PORT", "name": "...", "bwlimit": "100M" or
//    bytes/s, "rounds": 1-100, "downtime_ms": 0-600000}
// of which file and peer are required. Errors name the field and its value.
Result<TransferRequest> parseTransferRequest(std::string_view body);
// The body of PUT /v1/transfers/host-bwlimit: {"bwlimit": "100M" or bytes/s}.
Result<uint64_t> parseHostLimitBody(std::string_view body);
// A transfer id as it appears in a URL.
Result<uint64_t> parseTransferId(std::string_view text);

enum class TransferState { Connecting, Running, Done, Failed, Cancelled };
std::string_view transferStateName(TransferState state);

enum class CancelOutcome { Cancelled, Unknown, AlreadyFinished };

class TransferSubsystem : public Subsystem {
 public:
  // Binds the receiving endpoint (creating the staging directory) when
  // `settings.listen` is set, and loads the TLS files when given. CPUs in
  // `settings.cpus` the daemon may not run on are an error naming
  // transfer.cpus, before anything is bound. `migrationTiming` bounds the
  // migrations' QMP replies and how long POST /v1/migrations waits for a
  // start (the daemon derives it from its API's request timeout).
  static Result<std::shared_ptr<TransferSubsystem>> create(const TransferSettings& settings,
                                                           MigrationTiming migrationTiming = {});
  ~TransferSubsystem() override;
  TransferSubsystem(const TransferSubsystem&) = delete;
  TransferSubsystem& operator=(const TransferSubsystem&) = delete;

  std::string_view name() const override { return "transfer"; }
  bool runsIn(Phase) const override { return false; }
  Result<void> runPhase(Phase, const TickContext&) override { return ok(); }
  nlohmann::json describe() const override;

  // Opens the source and starts the transfer on its own thread; returns its
  // id. A source that cannot be opened, or the same file, peer and name
  // already on its way (errno EBUSY), is an error and starts nothing.
  Result<uint64_t> start(const TransferRequest& request);
  CancelOutcome cancel(uint64_t id);
  void setHostLimit(uint64_t bytesPerSecond);
  uint64_t hostLimit() const { return host_.limit(); }
  // The receiving endpoint's port; nullopt when the daemon receives nothing.
  std::optional<uint16_t> listeningPort() const;
  // Whether the daemon's connections use TLS ([transfer] tls_*): migration
  // tunnels are plaintext only (QEMU cannot be handed a TLS session).
  bool tlsEnabled() const { return tls_.enabled(); }
  // GET /v1/transfers: the host cap, the endpoint, every transfer sent
  // (bytes, rate, round, state) and the sessions received lately.
  nlohmann::json transfersJson() const;

  // The destination QEMUs the receiving endpoint serves incoming migrations
  // to, by tunnel id; useful only while listeningPort() has a value.
  transfer::TunnelDestinations& incomingMigrations() { return destinations_; }
  // GET /v1/migrations/incoming: the destinations registered, not expired and
  // (for hand-off) not yet taken by a migration.
  nlohmann::json incomingMigrationsJson() const;
  // The migrations this host drives as their source.
  MigrationJobs& migrations() { return migrations_; }
  // The downtime limit migrations get when their request names none
  // ([transfer] downtime_limit_ms, on a reload); 0 keeps QEMU's own.
  void setMigrationDowntimeLimit(uint64_t milliseconds);

  // Cancels what still runs (migrations with migrate_cancel, so their VMs
  // keep running here) and waits for the threads; the receiver stops.
  void stop();

 private:
  struct Job;
  TransferSubsystem(const TransferSettings& settings, MigrationTiming migrationTiming);
  void run(const std::shared_ptr<Job>& job);
  void recordSession(const std::string& peer, const Result<transfer::ReceiveReport>& result);

  TransferSettings settings_;
  transfer::HostBandwidth host_;
  transfer::TlsConfig tls_;
  std::shared_ptr<transfer::TlsContext> clientTls_;
  // Shared by every send and receive; declared before server_ so that it
  // outlives the server's threads.
  std::unique_ptr<transfer::TransferCpus> cpus_;
  // Read by the server's threads: declared before server_ for the same reason.
  transfer::TunnelDestinations destinations_;
  // Outgoing migrations; stop() ends them before the server stops.
  MigrationJobs migrations_;
  std::unique_ptr<transfer::TransferServer> server_;

  mutable std::mutex mutex_;
  uint64_t nextId_ = 1;
  std::map<uint64_t, std::shared_ptr<Job>> jobs_;
  std::vector<nlohmann::json> received_;
  bool stopped_ = false;
};

}  // namespace Atoll
