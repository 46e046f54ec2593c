#pragma once
// The live migrations atolld drives from the source host (POST
// /v1/migrations), each through the tunnel to a peer's TransferServer.
//
// Every request becomes a job at once, listed as "starting", and the job's
// own thread starts it: QemuMigration::start connects to the source QEMU and
// the peer and tells QEMU to migrate. That can take longer than the API
// allows a reply (a black-holed peer waits the socket's connect timeout, a
// QMP socket nobody answers waits QEMU's reply timeout), so the request waits
// for the outcome only up to MigrationTiming::startReplyWait: an outcome in
// time is the reply (started, or why not), and past it the reply says
// "starting" and GET /v1/migrations tells the rest. A start that fails keeps
// its record, state "failed" with the reason, so every request is listed.
//
// Once QEMU migrates, the same thread owns its QemuMigration (QMP takes one
// command at a time, so nothing else touches it): it polls QEMU, keeps the
// latest report and tunnel figures for GET /v1/migrations, acts on a cancel
// or the timeout with migrate_cancel, and at the end ends the tunnel's part
// and keeps the summary.
//
// Nothing here survives a restart: the migration is QEMU's, and a daemon
// that starts again does not know the QMP connection it had. stop() cancels
// what still runs or starts, so the source VM keeps running on this host.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "migrate/qemu/MigrationReport.h"
#include "migrate/qemu/MigrationStatus.h"
#include "migrate/transfer/QemuMigration.h"
#include "runtime/MigrationRequests.h"

namespace Atoll {

enum class MigrationState { Starting, Running, Completed, Failed, Cancelled };
std::string_view migrationStateName(MigrationState state);

enum class MigrationCancelOutcome { Cancelling, Unknown, AlreadyFinished };

struct MigrationTiming {
  // QEMU's report and the tunnel's figures are read this often.
  std::chrono::milliseconds pollInterval{250};
  // How long QEMU's own replies may take (each QMP command; connecting to
  // a socket nobody listens on waits this long too): seconds more than a
  // QEMU takes to answer, even busy migrating.
  std::chrono::milliseconds qmpReplyTimeout{10000};
  // How long POST /v1/migrations waits for the start's outcome before it
  // answers "starting": below the API's reply deadline, [api]
  // request_timeout_ms (startReplyWaitFor).
  std::chrono::milliseconds startReplyWait{4000};
  // After migrate_cancel QEMU normally reports "cancelled" within a moment;
  // past this the migration is given up as failed.
  std::chrono::milliseconds cancelGrace{15000};
  // The same while the daemon stops, which should not hang on a QEMU that
  // does not answer.
  std::chrono::milliseconds stopGrace{5000};
};

// The start's wait for an API whose replies are lost past `requestTimeout`:
// a second less, leaving the reply time to go out, and at least 500 ms.
std::chrono::milliseconds startReplyWaitFor(std::chrono::milliseconds requestTimeout);

// A migration that started: what the reply to POST /v1/migrations says.
struct StartedMigration {
  uint64_t id = 0;
  std::string mode;  // "hand-off" or "relay"
  uint64_t tunnelId = 0;
  std::string handOffNotOffered;
};

// What POST /v1/migrations answers: a started migration, one still starting
// when the wait ran out (its id), or why nothing started (the source VM runs
// on).
struct MigrationStart {
  std::optional<StartedMigration> started;
  std::optional<uint64_t> stillStarting;
  transfer::MigrationStartFailure failure = transfer::MigrationStartFailure::kRefused;
  std::string message;
};

class MigrationJobs {
 public:
  explicit MigrationJobs(MigrationTiming timing = {});
  ~MigrationJobs();
  MigrationJobs(const MigrationJobs&) = delete;
  MigrationJobs& operator=(const MigrationJobs&) = delete;

  // Records the migration as starting and starts it on its own thread,
  // which then follows it; returns the outcome, or the id when the start
  // takes longer than startReplyWait. A request without a downtime limit
  // gets the default in force now, and is listed and logged with it.
  MigrationStart start(const MigrationRequest& request);
  // QEMU's downtime-limit for requests that name none ([transfer]
  // downtime_limit_ms); 0 keeps QEMU's own. Migrations already started keep
  // the limit they were given.
  void setDefaultDowntimeLimitMs(uint64_t milliseconds);
  uint64_t defaultDowntimeLimitMs() const { return defaultDowntimeLimitMs_.load(); }
  // Asks the migration's thread to cancel it with migrate_cancel; one still
  // starting is cancelled as soon as QEMU migrates.
  MigrationCancelOutcome cancel(uint64_t id);
  // GET /v1/migrations: every migration, running ones with QEMU's latest
  // figures, finished ones with their summary.
  nlohmann::json migrationsJson() const;
  // Migrations not finished: starting (connecting to QEMU and the peer) or
  // running.
  size_t inFlight() const;
  // Cancels what still runs or starts, waits for QEMU to confirm (bounded by
  // stopGrace) and joins the threads. Refuses new migrations afterwards.
  void stop();

 private:
  struct Job;
  void run(const std::shared_ptr<Job>& job);
  // The start, on the job's thread: false when nothing migrates.
  bool startMigration(Job& job);
  void end(Job& job, MigrationState state, std::string error);

  MigrationTiming timing_;
  // Read by every start, set by reloads: no lock needed for one value.
  std::atomic<uint64_t> defaultDowntimeLimitMs_{0};
  mutable std::mutex mutex_;
  uint64_t nextId_ = 1;
  std::map<uint64_t, std::shared_ptr<Job>> jobs_;
  bool stopping_ = false;
};

}  // namespace Atoll
