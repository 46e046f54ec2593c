#pragma once
// The live migrations atolld drives from the source host (POST
// /v1/migrations), each through the tunnel to a peer's TransferServer.
//
// A migration starts in the request: QemuMigration::start connects to the
// source QEMU and the peer and tells QEMU to migrate, so a refusal comes back
// as the reply. Then one thread per migration owns its QemuMigration (QMP
// takes one command at a time, so nothing else touches it): it polls QEMU,
// keeps the latest report and tunnel figures for GET /v1/migrations, acts on
// a cancel or the timeout with migrate_cancel, and at the end ends the
// tunnel's part and keeps the summary.
//
// Nothing here survives a restart: the migration is QEMU's, and a daemon
// that starts again does not know the QMP connection it had. stop() cancels
// what still runs, so the source VM keeps running on this host.
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

enum class MigrationState { Running, Completed, Failed, Cancelled };
std::string_view migrationStateName(MigrationState state);

enum class MigrationCancelOutcome { Cancelling, Unknown, AlreadyFinished };

struct MigrationTiming {
  // QEMU's report and the tunnel's figures are read this often.
  std::chrono::milliseconds pollInterval{250};
  // How long QEMU's own replies may take (each QMP command; connecting to
  // a socket nobody listens on waits this long too). The start runs inside
  // the API request, whose reply is lost past [api] request_timeout_ms
  // (5 s by default): the bound stays below it, which is still seconds
  // more than a QEMU takes to answer, even busy migrating.
  std::chrono::milliseconds qmpReplyTimeout{4000};
  // After migrate_cancel QEMU normally reports "cancelled" within a moment;
  // past this the migration is given up as failed.
  std::chrono::milliseconds cancelGrace{15000};
  // The same while the daemon stops, which should not hang on a QEMU that
  // does not answer.
  std::chrono::milliseconds stopGrace{5000};
};

// A migration that started: what the reply to POST /v1/migrations says.
struct StartedMigration {
  uint64_t id = 0;
  std::string mode;  // "hand-off" or "relay"
  uint64_t tunnelId = 0;
  std::string handOffNotOffered;
};

// Either a started migration or why nothing started (the source VM runs on).
struct MigrationStart {
  std::optional<StartedMigration> started;
  transfer::MigrationStartFailure failure = transfer::MigrationStartFailure::kRefused;
  std::string message;
};

class MigrationJobs {
 public:
  explicit MigrationJobs(MigrationTiming timing = {});
  ~MigrationJobs();
  MigrationJobs(const MigrationJobs&) = delete;
  MigrationJobs& operator=(const MigrationJobs&) = delete;

  // Starts the migration (returns within QEMU's reply timeout) and, once
  // QEMU migrates, the thread that follows it.
  MigrationStart start(const MigrationRequest& request);
  // Asks the migration's thread to cancel it with migrate_cancel.
  MigrationCancelOutcome cancel(uint64_t id);
  // GET /v1/migrations: every migration, running ones with QEMU's latest
  // figures, finished ones with their summary.
  nlohmann::json migrationsJson() const;
  size_t running() const;
  // Cancels what still runs, waits for QEMU to confirm (bounded by
  // stopGrace) and joins the threads. Refuses new migrations afterwards.
  void stop();

 private:
  struct Job;
  void run(const std::shared_ptr<Job>& job);
  void end(Job& job, MigrationState state, std::string error);

  MigrationTiming timing_;
  mutable std::mutex mutex_;
  uint64_t nextId_ = 1;
  std::map<uint64_t, std::shared_ptr<Job>> jobs_;
  bool stopping_ = false;
};

}  // namespace Atoll
