#include "runtime/MigrationJobs.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <thread>
#include <utility>
#include <vector>

namespace Atoll {

namespace {

using Clock = std::chrono::steady_clock;

// Finished migrations kept for GET /v1/migrations.
constexpr size_t kFinishedKept = 64;

// "1.5", "30": seconds as the request wrote them, without trailing zeros.
std::string secondsText(std::chrono::milliseconds duration) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", static_cast<double>(duration.count()) / 1000.0);
  return text;
}

std::string_view failureName(transfer::MigrationStartFailure failure) {
  switch (failure) {
    case transfer::MigrationStartFailure::kInvalid:
      return "invalid";
    case transfer::MigrationStartFailure::kQemuUnreachable:
      return "qemu_unreachable";
    case transfer::MigrationStartFailure::kPeerUnreachable:
      return "peer_unreachable";
    case transfer::MigrationStartFailure::kRefused:
      return "refused";
  }
  return "unknown";
}

}  // namespace

std::string_view migrationStateName(MigrationState state) {
  switch (state) {
    case MigrationState::Starting:
      return "starting";
    case MigrationState::Running:
      return "running";
    case MigrationState::Completed:
      return "completed";
    case MigrationState::Failed:
      return "failed";
    case MigrationState::Cancelled:
      return "cancelled";
  }
  return "unknown";
}

struct MigrationJobs::Job {
  uint64_t id = 0;
  MigrationRequest request;
  // When the request came; elapsed_seconds counts from here.
  Clock::time_point requested;
  // Only the job's thread touches these: QMP takes one command at a time.
  std::unique_ptr<transfer::QemuMigration> migration;
  Clock::time_point migrating;  // when QEMU was told to migrate; the timeout counts from here
  std::thread thread;

  mutable std::mutex mutex;  // guards everything below
  // Wakes the thread for a cancel, and the request waiting for the start.
  std::condition_variable wake;
  MigrationState state = MigrationState::Starting;
  // The request's tunnel id and channels until the start says what it uses;
  // mode and hand-off once it has started. Only the job's thread writes them.
  std::string mode;
  uint64_t tunnelId = 0;
  uint32_t channels = 1;
  std::string handOffNotOffered;
  // Set when the start failed: nothing migrates.
  std::optional<transfer::MigrationStartFailure> startFailure;
  // Why the migration is to be cancelled (the API, the timeout, the daemon
  // stopping); empty while nobody asked.
  std::string cancelReason;
  qemu::MigrationStatus status;
  qemu::TunnelFigures figures;
  nlohmann::json summary;  // null until finished
  std::string tunnelError;
  std::string error;
  std::optional<Clock::time_point> finished;
};

std::chrono::milliseconds startReplyWaitFor(std::chrono::milliseconds requestTimeout) {
  return std::max(std::chrono::milliseconds(500), requestTimeout - std::chrono::seconds(1));
}

MigrationJobs::MigrationJobs(MigrationTiming timing) : timing_(timing) {}

MigrationJobs::~MigrationJobs() {
  stop();
}

void MigrationJobs::setDefaultDowntimeLimitMs(uint64_t milliseconds) {
  defaultDowntimeLimitMs_.store(milliseconds);
}

MigrationStart MigrationJobs::start(const MigrationRequest& request) {
  MigrationStart out;
  auto job = std::make_shared<Job>();
  job->request = request;
  // Fixed here, not on the job's thread, so the listing and the log show the
  // limit QEMU is given even when a reload changes the default meanwhile.
  if (job->request.migration.downtimeLimitMs == 0)
    job->request.migration.downtimeLimitMs = defaultDowntimeLimitMs_.load();
  job->requested = Clock::now();
  job->tunnelId = request.migration.tunnelId;
  job->channels = request.migration.channels;

  std::vector<std::shared_ptr<Job>> forgotten;
  {
    std::lock_guard lock(mutex_);
    if (stopping_) {
      out.message = "the daemon is stopping: no migration starts";
      return out;
    }
    job->id = nextId_++;
    jobs_[job->id] = job;
    // Forget the oldest finished migrations beyond what GET shows; their
    // threads are joined below, outside the lock.
    for (auto it = jobs_.begin(); it != jobs_.end() && jobs_.size() > kFinishedKept;) {
      std::unique_lock jobLock(it->second->mutex);
      bool done = it->second->state != MigrationState::Starting &&
                  it->second->state != MigrationState::Running;
      jobLock.unlock();
      if (done) {
        forgotten.push_back(it->second);
        it = jobs_.erase(it);
      } else {
        ++it;
      }
    }
    // Started under the lock, so stop() finds every job with its thread.
    job->thread = std::thread([this, job] { run(job); });
  }
  for (auto& old : forgotten) {
    if (old->thread.joinable()) old->thread.join();
  }

  std::unique_lock jobLock(job->mutex);
  job->wake.wait_for(jobLock, timing_.startReplyWait,
                     [&] { return job->state != MigrationState::Starting; });
  if (job->state == MigrationState::Starting) {
    out.stillStarting = job->id;
  } else if (job->startFailure) {
    out.failure = *job->startFailure;
    out.message = job->error;
  } else {
    // Running, or already over (a cancel, QEMU failing at once): it started.
    out.started = StartedMigration{job->id, job->mode, job->tunnelId, job->handOffNotOffered};
  }
  return out;
}

bool MigrationJobs::startMigration(Job& job) {
  const auto& request = job.request;
  const std::string& qmp = request.migration.qmpSocket;
  const std::string peer = request.migration.peer.text();
  // Returns within the QMP reply timeout per command, or the socket's
  // connect timeout for the peer: stop() waits that long at most for a
  // start in progress.
  auto started = transfer::QemuMigration::start(request.migration, timing_.qmpReplyTimeout);
  if (!started.migration) {
    spdlog::warn("event=migration_refused id={} qmp={} peer={} failure={} error=\"{}\"", job.id,
                 qmp, peer, failureName(started.failure), started.message);
    {
      std::lock_guard lock(job.mutex);
      job.startFailure = started.failure;
    }
    end(job, MigrationState::Failed, std::move(started.message));
    return false;
  }
  job.migration = std::move(started.migration);
  job.migrating = Clock::now();
  {
    std::lock_guard lock(job.mutex);
    job.mode = job.migration->mode();
    job.tunnelId = job.migration->tunnelId();
    job.channels = job.migration->channels();
    job.handOffNotOffered = job.migration->handOffNotOffered();
    job.status.status = "setup";
    job.figures.mode = job.mode;
    job.state = MigrationState::Running;
    spdlog::info(
        "event=migration_started id={} qmp={} peer={} tunnel_id={} mode={} channels={} "
        "bwlimit={} downtime_limit_ms={} timeout_s={}{}",
        job.id, qmp, peer, transfer::tunnelIdText(job.tunnelId), job.mode, job.channels,
        request.migration.bandwidth, request.migration.downtimeLimitMs,
        secondsText(request.timeout),
        job.handOffNotOffered.empty() ? std::string()
                                      : " hand_off_not_offered=\"" + job.handOffNotOffered + "\"");
  }
  job.wake.notify_all();
  return true;
}

void MigrationJobs::run(const std::shared_ptr<Job>& job) {
  if (!startMigration(*job)) return;
  // A cancel asked for while it started (the API, the daemon stopping) is
  // already set: the first pass below sends migrate_cancel.
  const std::string& qmp = job->request.migration.qmpSocket;
  std::optional<Clock::time_point> cancelSentAt;
  std::string cancelReason;
  qemu::MigrationStatus status;
  for (;;) {
    auto report = job->migration->poll();
    if (!report) {
      // Without QEMU's answer the migration's fate is unknown here; QEMU
      // keeps whichever VM it has, and the tunnel is dropped.
      return end(*job, MigrationState::Failed,
                 "lost contact with QEMU at " + qmp + ": " + report.error().message());
    }
    status = *report;
    qemu::TunnelFigures figures = job->migration->figures();
    {
      std::lock_guard lock(job->mutex);
      job->status = status;
      job->figures = figures;
    }
    if (status.finished()) break;

    auto now = Clock::now();
    {
      std::lock_guard lock(job->mutex);
      const auto timeout = job->request.timeout;
      if (job->cancelReason.empty() && timeout.count() > 0 && now - job->migrating >= timeout) {
        job->cancelReason = "not finished within timeout_s " + secondsText(timeout);
      }
      cancelReason = job->cancelReason;
    }
    if (!cancelSentAt && !cancelReason.empty()) {
      spdlog::info("event=migration_cancelling id={} reason=\"{}\"", job->id, cancelReason);
      // A refusal (QEMU finished meanwhile) shows in the next report.
      if (auto cancelled = job->migration->cancel(); !cancelled) {
        spdlog::warn("event=migration_cancel_failed id={} error=\"{}\"", job->id,
                     cancelled.error().message());
      }
      cancelSentAt = now;
    }
    if (cancelSentAt) {
      std::chrono::milliseconds grace;
      {
        std::lock_guard lock(mutex_);
        grace = stopping_ ? timing_.stopGrace : timing_.cancelGrace;
      }
      if (now - *cancelSentAt > grace) {
        return end(*job, MigrationState::Failed,
                   cancelReason + "; QEMU at " + qmp + " still reports '" + status.status +
                       "' after migrate_cancel");
      }
    }
    std::unique_lock lock(job->mutex);
    // A cancel asked for meanwhile is acted on at once, not a poll later.
    job->wake.wait_for(lock, timing_.pollInterval,
                       [&] { return !cancelSentAt && !job->cancelReason.empty(); });
  }

  // QEMU has finished: end the tunnel's part and keep the summary.
  qemu::TunnelFigures figures = job->migration->finish();
  std::string tunnelError = job->migration->tunnelError();
  nlohmann::json summary = qemu::summaryJson(status, figures);
  summary["channels"] = job->channels;
  summary["mode"] = job->mode;
  if (!job->handOffNotOffered.empty()) summary["hand_off_not_offered"] = job->handOffNotOffered;
  if (!cancelReason.empty()) summary["cancel_reason"] = cancelReason;
  if (!tunnelError.empty()) summary["tunnel_error"] = tunnelError;
  {
    std::lock_guard lock(job->mutex);
    job->figures = figures;
    job->summary = std::move(summary);
    job->tunnelError = tunnelError;
  }
  if (status.succeeded()) return end(*job, MigrationState::Completed, "");
  if (status.status == "cancelled") {
    return end(*job, MigrationState::Cancelled,
               cancelReason.empty() ? "cancelled outside atolld (migrate_cancel on QEMU's monitor)"
                                    : cancelReason);
  }
  std::string why = status.errorDescription.empty() ? std::string("QEMU gave no reason")
                                                    : status.errorDescription;
  if (!cancelReason.empty()) why = cancelReason + "; " + why;
  end(*job, MigrationState::Failed, "migration failed: " + why + "; the source VM keeps running");
}

void MigrationJobs::end(Job& job, MigrationState state, std::string error) {
  // Closes the QMP connection and whatever of the tunnel is still open.
  job.migration.reset();
  qemu::MigrationStatus status;
  uint64_t tunnelBytes = 0;
  bool startFailed = false;
  {
    std::lock_guard lock(job.mutex);
    job.state = state;
    job.error = std::move(error);
    job.finished = Clock::now();
    status = job.status;
    tunnelBytes = job.figures.bytesToPeer;
    startFailed = job.startFailure.has_value();
  }
  // Wakes the request still waiting for the start's outcome.
  job.wake.notify_all();
  // A start that failed was logged as migration_refused: nothing migrated.
  if (startFailed) return;
  spdlog::log(state == MigrationState::Completed ? spdlog::level::info : spdlog::level::warn,
              "event=migration_finished id={} state={} qemu_status={} total_ms={} downtime_ms={} "
              "ram_bytes={} tunnel_bytes={} error=\"{}\"",
              job.id, migrationStateName(state), status.status, status.totalTimeMs,
              status.downtimeMs, status.ramTransferredBytes, tunnelBytes, job.error);
}

MigrationCancelOutcome MigrationJobs::cancel(uint64_t id) {
  std::shared_ptr<Job> job;
  {
    std::lock_guard lock(mutex_);
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return MigrationCancelOutcome::Unknown;
    job = it->second;
  }
  std::lock_guard lock(job->mutex);
  if (job->state != MigrationState::Running && job->state != MigrationState::Starting)
    return MigrationCancelOutcome::AlreadyFinished;
  if (job->cancelReason.empty()) {
    job->cancelReason = "cancelled through the API";
    spdlog::info("event=migration_cancel_requested id={}", id);
  }
  job->wake.notify_all();
  return MigrationCancelOutcome::Cancelling;
}

size_t MigrationJobs::inFlight() const {
  std::lock_guard lock(mutex_);
  size_t count = 0;
  for (const auto& [id, job] : jobs_) {
    std::lock_guard jobLock(job->mutex);
    count += job->state == MigrationState::Starting || job->state == MigrationState::Running;
  }
  return count;
}

nlohmann::json MigrationJobs::migrationsJson() const {
  nlohmann::json migrations = nlohmann::json::array();
  std::lock_guard lock(mutex_);
  for (const auto& [id, job] : jobs_) {
    std::lock_guard jobLock(job->mutex);
    const auto& request = job->request.migration;
    const auto& status = job->status;
    const auto& figures = job->figures;
    auto end = job->finished.value_or(Clock::now());
    // Until the start is over, mode and tunnel id are what was asked for.
    nlohmann::json entry{
        {"id", id},
        {"qmp", request.qmpSocket},
        {"peer", request.peer.text()},
        // Empty while a start that was given no id has yet to choose one.
        {"tunnel_id", job->tunnelId != 0 ? transfer::tunnelIdText(job->tunnelId) : ""},
        {"mode", job->mode},
        {"channels", job->channels},
        {"bwlimit", request.bandwidth},
        {"downtime_limit_ms", request.downtimeLimitMs},
        {"relay", request.relay},
        {"timeout_s", static_cast<double>(job->request.timeout.count()) / 1000.0},
        {"state", migrationStateName(job->state)},
        {"elapsed_seconds", std::chrono::duration<double>(end - job->requested).count()},
        // QEMU's own report (query-migrate), the latest the thread read.
        {"status", status.status},
        {"total_time_ms", status.totalTimeMs},
        {"setup_time_ms", status.setupTimeMs},
        {"downtime_ms", status.downtimeMs},
        {"expected_downtime_ms", status.expectedDowntimeMs},
        {"ram_transferred_bytes", status.ramTransferredBytes},
        {"ram_remaining_bytes", status.ramRemainingBytes},
        {"ram_total_bytes", status.ramTotalBytes},
        {"dirty_pages_rate", status.dirtyPagesRate},
        {"page_size", status.pageSize},
        {"passes", status.dirtySyncCount},
        {"ram_mbps", status.ramMbps},
        {"tunnel",
         // The tunnel's mode is known once the start chose it.
         {{"mode", job->mode.empty() ? std::string() : figures.mode},
          {"bytes_to_peer", figures.bytesToPeer},
          {"bytes_from_peer", figures.bytesFromPeer},
          {"connections", figures.connections}}}};
    if (!status.errorDescription.empty()) entry["qemu_error"] = status.errorDescription;
    if (!job->error.empty()) entry["error"] = job->error;
    if (job->startFailure) entry["start_failure"] = failureName(*job->startFailure);
    if (!job->handOffNotOffered.empty()) entry["hand_off_not_offered"] = job->handOffNotOffered;
    if (!job->cancelReason.empty()) entry["cancel_reason"] = job->cancelReason;
    if (!job->tunnelError.empty()) entry["tunnel_error"] = job->tunnelError;
    if (!job->summary.is_null()) entry["summary"] = job->summary;
    migrations.push_back(std::move(entry));
  }
  return {{"migrations", std::move(migrations)}};
}

void MigrationJobs::stop() {
  std::vector<std::shared_ptr<Job>> jobs;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    for (auto& [id, job] : jobs_) jobs.push_back(job);
  }
  for (auto& job : jobs) {
    std::lock_guard lock(job->mutex);
    if ((job->state == MigrationState::Running || job->state == MigrationState::Starting) &&
        job->cancelReason.empty()) {
      job->cancelReason = "atolld is stopping (the source VM keeps running here)";
    }
    job->wake.notify_all();
  }
  // Each thread ends within stopGrace of its migrate_cancel, plus a QMP
  // reply; one still starting first waits out its start, bounded by the
  // QMP reply timeout per command and the peer's connect timeout.
  for (auto& job : jobs) {
    if (job->thread.joinable()) job->thread.join();
  }
}

}  // namespace Atoll
