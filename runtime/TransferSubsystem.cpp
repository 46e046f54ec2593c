#include "runtime/TransferSubsystem.h"

#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <xxhash.h>

#include <cerrno>
#include <charconv>

#include "migrate/transfer/ImageSender.h"
#include "migrate/transfer/Rate.h"
#include "migrate/transfer/ReceiveReportJson.h"
#include "migrate/transfer/StagingArea.h"
#include "numa/Topology.h"
#include "runtime/ApiRequests.h"

namespace Atoll {

namespace {

using Clock = std::chrono::steady_clock;
using namespace Atoll::transfer;

// Finished transfers and received sessions kept for GET /v1/transfers.
constexpr size_t kFinishedKept = 64;

constexpr std::string_view kTransferRequest = "transfer request";

Error fieldError(std::string_view field, const nlohmann::json& value, std::string detail) {
  return requestFieldError(kTransferRequest, field, value, std::move(detail));
}

Result<uint64_t> rateField(std::string_view field, const nlohmann::json& value) {
  if (value.is_number_unsigned()) {
    // The same ceiling as a rate given as text.
    if (value.get<uint64_t>() >= kRateCeiling)
      return fieldError(field, value,
                        "expected bytes per second below " + std::to_string(kRateCeiling));
    return value.get<uint64_t>();
  }
  if (value.is_string()) {
    auto rate = parseRate(value.get<std::string>(), field);
    if (!rate) return fieldError(field, value, rate.error().detail);
    return *rate;
  }
  return fieldError(field, value,
                    "expected bytes per second: a non-negative integer or a string such as "
                    "\"500k\", \"100M\", \"1G\" (0: no cap)");
}

Result<int64_t> integerField(std::string_view field, const nlohmann::json& value, int64_t min,
                             int64_t max) {
  if (!value.is_number_integer() || value.get<int64_t>() < min || value.get<int64_t>() > max) {
    return fieldError(
        field, value,
        "expected an integer from " + std::to_string(min) + " to " + std::to_string(max));
  }
  return value.get<int64_t>();
}

Result<std::string> stringField(std::string_view field, const nlohmann::json& value) {
  return requestStringField(kTransferRequest, field, value);
}

double secondsSince(Clock::time_point start, Clock::time_point end) {
  return std::chrono::duration<double>(end - start).count();
}

}  // namespace

Result<TransferRequest> parseTransferRequest(std::string_view body) {
  auto document = parseJsonObjectBody(body, "POST /v1/transfers");
  if (!document) return document.error();
  static constexpr std::string_view kKnown = "file, peer, name, bwlimit, rounds, downtime_ms";
  TransferRequest request;
  bool haveFile = false, havePeer = false;
  for (const auto& [key, value] : document->items()) {
    if (key == "file") {
      auto file = stringField(key, value);
      if (!file) return file.error();
      if (file->empty() || file->front() != '/' || file->back() == '/') {
        return fieldError(key, value, "expected the absolute path of a file or block device");
      }
      request.file = *file;
      haveFile = true;
    } else if (key == "peer") {
      auto text = stringField(key, value);
      if (!text) return text.error();
      auto peer = parseEndpoint(*text);
      if (!peer) return fieldError(key, value, peer.error().detail);
      request.peer = *peer;
      havePeer = true;
    } else if (key == "name") {
      auto name = stringField(key, value);
      if (!name) return name.error();
      if (auto checked = checkRemoteName(*name); !checked) {
        return fieldError(key, value, checked.error().detail);
      }
      request.name = *name;
    } else if (key == "bwlimit") {
      auto rate = rateField(key, value);
      if (!rate) return rate.error();
      request.bandwidth = *rate;
    } else if (key == "rounds") {
      auto rounds = integerField(key, value, 1, kMaxTransferRounds);
      if (!rounds) return rounds.error();
      request.rounds = static_cast<uint32_t>(*rounds);
    } else if (key == "downtime_ms") {
      auto budget = integerField(key, value, 0, 600000);
      if (!budget) return budget.error();
      request.downtimeBudget = std::chrono::milliseconds(*budget);
    } else {
      return Error::invalid("transfer request", "", key,
                            "unknown field (known fields: " + std::string(kKnown) + ")");
    }
  }
  if (!haveFile) return Error::invalid("transfer request", "", "file", "required field missing");
  if (!havePeer) return Error::invalid("transfer request", "", "peer", "required field missing");
  if (request.name.empty()) {
    request.name = request.file.substr(request.file.rfind('/') + 1);
    if (auto checked = checkRemoteName(request.name); !checked) {
      return Error::invalid("transfer request", "", request.file,
                            "the file's name cannot serve as the name at the peer (" +
                                checked.error().detail + "); give \"name\"");
    }
  }
  return request;
}

Result<uint64_t> parseHostLimitBody(std::string_view body) {
  auto document = parseJsonObjectBody(body, "PUT /v1/transfers/host-bwlimit");
  if (!document) return document.error();
  for (const auto& [key, value] : document->items()) {
    if (key != "bwlimit") {
      return Error::invalid("host bandwidth limit", "", key,
                            "unknown field (known fields: bwlimit)");
    }
  }
  if (!document->contains("bwlimit")) {
    return Error::invalid("host bandwidth limit", "", "bwlimit", "required field missing");
  }
  return rateField("bwlimit", (*document)["bwlimit"]);
}

Result<uint64_t> parseTransferId(std::string_view text) {
  uint64_t id = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc() || end != text.data() + text.size() || id == 0) {
    return Error::invalid("parse", "transfer id", std::string(text),
                          "expected a transfer number from GET /v1/transfers");
  }
  return id;
}

std::string_view transferStateName(TransferState state) {
  switch (state) {
    case TransferState::Connecting:
      return "connecting";
    case TransferState::Running:
      return "running";
    case TransferState::Done:
      return "done";
    case TransferState::Failed:
      return "failed";
    case TransferState::Cancelled:
      return "cancelled";
  }
  return "unknown";
}

struct TransferSubsystem::Job {
  uint64_t id = 0;
  TransferRequest request;
  std::unique_ptr<ImageSender> sender;  // the job's thread owns it once started
  std::unique_ptr<TransferLimiter> limiter;
  Clock::time_point started;
  std::thread thread;

  mutable std::mutex mutex;  // guards everything below
  std::condition_variable wake;
  bool cancelRequested = false;
  int socket = -1;  // valid while the sender holds the connection
  TransferState state = TransferState::Connecting;
  uint64_t imageBytes = 0;
  uint32_t round = 0;
  uint32_t roundsDone = 0;
  uint64_t bytesBeforeRound = 0;  // dirty bytes of the rounds already done
  uint64_t roundBytes = 0;
  uint64_t wireBytes = 0;
  int cpu = -1;  // the CPU of the last round done; -1: not placed
  Clock::time_point roundStarted;
  std::optional<Clock::time_point> finished;
  std::string recordLayer;
  std::string error;
  std::optional<uint64_t> imageHash;

  bool active() const {
    return state == TransferState::Connecting || state == TransferState::Running;
  }
};

TransferSubsystem::TransferSubsystem(const TransferSettings& settings,
                                     MigrationTiming migrationTiming)
    : settings_(settings),
      host_(settings.hostBandwidth),
      tls_{settings.tlsCertificate, settings.tlsPrivateKey, settings.tlsCa},
      migrations_(migrationTiming) {
  migrations_.setDefaultDowntimeLimitMs(settings.downtimeLimitMs);
}

Result<std::shared_ptr<TransferSubsystem>> TransferSubsystem::create(
    const TransferSettings& settings, MigrationTiming migrationTiming) {
  std::shared_ptr<TransferSubsystem> subsystem(new TransferSubsystem(settings, migrationTiming));
  auto cpus = TransferCpus::create(settings.cpus, "transfer.cpus");
  if (!cpus) return cpus.error();
  subsystem->cpus_ = std::make_unique<TransferCpus>(std::move(*cpus));
  if (!settings.cpus.empty()) {
    spdlog::info("event=transfer_cpus cpus={}", numa::formatCpuList(settings.cpus));
  }
  if (subsystem->tls_.enabled()) {
    auto context = TlsContext::create(subsystem->tls_, TlsContext::Role::kClient);
    if (!context) return context.error();
    subsystem->clientTls_ = *context;
  }
  if (!settings.listen.empty()) {
    auto listen = parseEndpoint(settings.listen);
    if (!listen) return listen.error();
    if (::mkdir(settings.stagingDirectory.c_str(), 0700) != 0 && errno != EEXIST) {
      return Error::fromErrno("mkdir", settings.stagingDirectory, errno);
    }
    ServerConfig config;
    config.stagingDirectory = settings.stagingDirectory;
    config.listen = *listen;
    config.tls = subsystem->tls_;
    config.hostBandwidth = &subsystem->host_;
    config.receiver.cpus = subsystem->cpus_.get();
    config.receiver.pipelined = settings.pipelined;
    config.tunnelDestinations = &subsystem->destinations_;
    // The server's threads end in stop(), before the subsystem goes.
    TransferSubsystem* self = subsystem.get();
    config.onSession = [self](const std::string& peer, const Result<ReceiveReport>& result) {
      self->recordSession(peer, result);
    };
    auto server = TransferServer::create(config);
    if (!server) return server.error();
    subsystem->server_ = std::move(*server);
    subsystem->server_->start();
    spdlog::info("event=transfer_listening listen={} port={} staging_directory={} tls={}",
                 settings.listen, subsystem->server_->port(), settings.stagingDirectory,
                 subsystem->tls_.enabled());
  }
  return subsystem;
}

TransferSubsystem::~TransferSubsystem() {
  stop();
}

void TransferSubsystem::stop() {
  std::vector<std::shared_ptr<Job>> jobs;
  {
    std::lock_guard lock(mutex_);
    stopped_ = true;
    for (auto& [id, job] : jobs_) jobs.push_back(job);
  }
  for (auto& job : jobs) cancel(job->id);
  migrations_.stop();
  for (auto& job : jobs) {
    if (job->thread.joinable()) job->thread.join();
  }
  if (server_) server_->stop();
}

nlohmann::json TransferSubsystem::incomingMigrationsJson() const {
  auto now = Clock::now();
  nlohmann::json incoming = nlohmann::json::array();
  for (const auto& registered : destinations_.list(now)) {
    nlohmann::json entry{
        {"tunnel_id", tunnelIdText(registered.tunnelId)},
        {"expires_in_s",
         std::chrono::duration_cast<std::chrono::seconds>(registered.expiresAt - now).count()}};
    if (!registered.destination.qmpSocket.empty()) {
      entry["qmp"] = registered.destination.qmpSocket;
      entry["mode"] = "hand-off";
    } else {
      entry["unix"] = registered.destination.unixSocket;
      entry["mode"] = "relay";
    }
    incoming.push_back(std::move(entry));
  }
  nlohmann::json out{{"incoming", std::move(incoming)}};
  if (server_) {
    out["port"] = server_->port();
  } else {
    out["port"] = nullptr;
  }
  return out;
}

std::optional<uint16_t> TransferSubsystem::listeningPort() const {
  if (!server_) return std::nullopt;
  return server_->port();
}

void TransferSubsystem::setHostLimit(uint64_t bytesPerSecond) {
  uint64_t before = host_.limit();
  host_.setLimit(bytesPerSecond);
  spdlog::info("event=transfer_host_bwlimit before={} after={} transfers={}", before,
               bytesPerSecond, host_.activeTransfers());
}

void TransferSubsystem::setMigrationDowntimeLimit(uint64_t milliseconds) {
  uint64_t before = migrations_.defaultDowntimeLimitMs();
  migrations_.setDefaultDowntimeLimitMs(milliseconds);
  spdlog::info("event=migration_downtime_limit before={} after={}", before, milliseconds);
}

Result<uint64_t> TransferSubsystem::start(const TransferRequest& request) {
  // The same source, name and peer give the same id at the receiver, so a
  // transfer requested again after an interruption resumes there.
  char* real = ::realpath(request.file.c_str(), nullptr);
  std::string identity =
      std::string(real != nullptr ? real : request.file.c_str()) + "\n" + request.name;
  ::free(real);
  {
    std::lock_guard lock(mutex_);
    if (stopped_) {
      return Error::invalid("start transfer", request.file, "", "the daemon is shutting down");
    }
    for (const auto& [id, other] : jobs_) {
      std::lock_guard jobLock(other->mutex);
      if (other->active() && other->request.file == request.file &&
          other->request.name == request.name && other->request.peer.text() == request.peer.text())
        return Error{"start transfer", request.file, request.peer.text(), EBUSY,
                     "already on its way as transfer " + std::to_string(id)};
    }
  }

  auto job = std::make_shared<Job>();
  job->request = request;
  // Pacing sleeps end early on cancel, so a low cap never delays it.
  PacingClock clock = PacingClock::steady();
  std::weak_ptr<Job> weak = job;
  clock.sleepFor = [weak](std::chrono::nanoseconds duration) {
    auto held = weak.lock();
    if (!held) return;
    std::unique_lock lock(held->mutex);
    held->wake.wait_for(lock, duration, [&] { return held->cancelRequested; });
  };
  job->limiter = std::make_unique<TransferLimiter>(request.bandwidth, &host_, clock);

  SenderOptions options;
  options.remoteName = request.name;
  options.transferId = XXH3_64bits(identity.data(), identity.size());
  options.limiter = job->limiter.get();
  options.cpus = cpus_.get();
  options.pipelined = settings_.pipelined;
  Job* raw = job.get();
  options.onBlock = [raw](uint64_t roundBytes) {
    std::lock_guard lock(raw->mutex);
    raw->roundBytes = roundBytes;
  };
  auto sender = ImageSender::open(request.file, options);
  if (!sender) return sender.error();
  job->sender = std::move(*sender);
  job->imageBytes = job->sender->imageSize();
  job->started = job->roundStarted = Clock::now();

  std::lock_guard lock(mutex_);
  if (stopped_) {
    return Error::invalid("start transfer", request.file, "", "the daemon is shutting down");
  }
  job->id = nextId_++;
  jobs_[job->id] = job;
  // Forget the oldest finished transfers beyond what GET shows.
  for (auto it = jobs_.begin(); it != jobs_.end() && jobs_.size() > kFinishedKept;) {
    std::unique_lock jobLock(it->second->mutex);
    bool done = !it->second->active() && it->second->id != job->id;
    jobLock.unlock();
    if (done) {
      if (it->second->thread.joinable()) it->second->thread.join();
      it = jobs_.erase(it);
    } else {
      ++it;
    }
  }
  spdlog::info("event=transfer_started id={} file={} peer={} name={} bwlimit={} rounds={}", job->id,
               request.file, request.peer.text(), request.name, request.bandwidth, request.rounds);
  job->thread = std::thread([this, job] { run(job); });
  return job->id;
}

void TransferSubsystem::run(const std::shared_ptr<Job>& job) {
  auto finish = [&](TransferState state, std::string error) {
    {
      std::lock_guard lock(job->mutex);
      job->socket = -1;
      job->state = job->cancelRequested ? TransferState::Cancelled : state;
      job->error = job->cancelRequested ? "cancelled through the API" : std::move(error);
      job->finished = Clock::now();
    }
    // The connection closes here, after `socket` stopped naming it.
    job->sender.reset();
    {
      std::lock_guard lock(job->mutex);
      job->limiter.reset();
    }
    spdlog::log(state == TransferState::Done ? spdlog::level::info : spdlog::level::warn,
                "event=transfer_finished id={} state={} error=\"{}\"", job->id,
                transferStateName(job->state), job->error);
  };

  SocketOptions socketOptions;
  auto fd = connectTcp(job->request.peer, socketOptions.idleTimeout);
  if (!fd) return finish(TransferState::Failed, fd.error().message());
  {
    std::lock_guard lock(job->mutex);
    if (job->cancelRequested) return finish(TransferState::Cancelled, "");
    job->socket = fd->get();
  }
  auto socket = SocketChannel::create(std::move(*fd), job->request.peer.text(), socketOptions);
  if (!socket) return finish(TransferState::Failed, socket.error().message());
  std::unique_ptr<Channel> channel;
  std::string recordLayer = "plaintext";
  if (clientTls_) {
    auto secured = TlsChannel::handshake(std::move(*socket), clientTls_);
    if (!secured) return finish(TransferState::Failed, secured.error().message());
    recordLayer = (*secured)->recordLayer();
    channel = std::move(*secured);
  } else {
    channel = std::move(*socket);
  }
  if (auto attached = job->sender->attach(std::move(channel)); !attached) {
    return finish(TransferState::Failed, attached.error().message());
  }
  {
    std::lock_guard lock(job->mutex);
    job->state = TransferState::Running;
    job->recordLayer = recordLayer;
    job->roundStarted = Clock::now();
  }

  PreCopyPolicy policy;
  policy.maxRounds = job->request.rounds;
  policy.downtimeBudget = job->request.downtimeBudget;
  policy.onRound = [&job](const RoundReport& report) {
    std::lock_guard lock(job->mutex);
    job->roundsDone = report.round + 1;
    job->round = report.round + 1;
    job->bytesBeforeRound += report.dirtyBytes;
    job->roundBytes = 0;
    job->wireBytes += report.wireBytes;
    job->cpu = report.cpu;
    job->roundStarted = Clock::now();
  };
  auto report = runPreCopy(*job->sender, policy);
  if (!report) return finish(TransferState::Failed, report.error().message());
  {
    std::lock_guard lock(job->mutex);
    job->imageHash = report->verify.sourceHash;
  }
  finish(TransferState::Done, "");
}

CancelOutcome TransferSubsystem::cancel(uint64_t id) {
  std::shared_ptr<Job> job;
  {
    std::lock_guard lock(mutex_);
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return CancelOutcome::Unknown;
    job = it->second;
  }
  std::lock_guard lock(job->mutex);
  if (!job->active()) return CancelOutcome::AlreadyFinished;
  job->cancelRequested = true;
  if (job->socket >= 0) ::shutdown(job->socket, SHUT_RDWR);
  job->wake.notify_all();
  spdlog::info("event=transfer_cancel_requested id={}", id);
  return CancelOutcome::Cancelled;
}

void TransferSubsystem::recordSession(const std::string& peer,
                                      const Result<ReceiveReport>& result) {
  nlohmann::json entry = transfer::receivedSessionJson(peer, result);
  if (result) {
    spdlog::info("event=transfer_received peer={} path={} committed={} resumed={} cpu={}", peer,
                 result->finalPath, result->committed, result->resumed, result->cpu);
  } else {
    spdlog::warn("event=transfer_receive_failed peer={} error=\"{}\"", peer,
                 result.error().message());
  }
  std::lock_guard lock(mutex_);
  received_.push_back(std::move(entry));
  if (received_.size() > kFinishedKept) received_.erase(received_.begin());
}

nlohmann::json TransferSubsystem::transfersJson() const {
  nlohmann::json transfers = nlohmann::json::array();
  nlohmann::json received;
  {
    std::lock_guard lock(mutex_);
    received = received_;
    for (const auto& [id, job] : jobs_) {
      std::lock_guard jobLock(job->mutex);
      auto now = Clock::now();
      auto end = job->finished.value_or(now);
      uint64_t bytes = job->bytesBeforeRound + job->roundBytes;
      // While running: the rate of the round in progress; after: the
      // average over the whole transfer.
      double rate = job->finished
                        ? bytes / std::max(secondsSince(job->started, end), 1e-6)
                        : job->roundBytes / std::max(secondsSince(job->roundStarted, now), 1e-6);
      nlohmann::json entry{{"id", id},
                           {"file", job->request.file},
                           {"peer", job->request.peer.text()},
                           {"name", job->request.name},
                           {"state", transferStateName(job->state)},
                           {"round", job->round},
                           {"rounds_done", job->roundsDone},
                           {"max_rounds", job->request.rounds},
                           {"image_bytes", job->imageBytes},
                           {"round_bytes", job->roundBytes},
                           {"bytes", bytes},
                           {"wire_bytes", job->wireBytes},
                           {"bytes_per_second", rate},
                           {"bwlimit", job->request.bandwidth},
                           {"elapsed_seconds", secondsSince(job->started, end)},
                           {"record_layer", job->recordLayer},
                           {"cpu", job->cpu}};
      // What the pacing allows now: the own cap reduced to the fair host share.
      if (job->limiter) entry["rate_limit"] = job->limiter->effectiveRate();
      if (!job->error.empty()) entry["error"] = job->error;
      if (job->imageHash) entry["image_hash"] = *job->imageHash;
      transfers.push_back(std::move(entry));
    }
  }
  nlohmann::json out{{"host_bwlimit", host_.limit()},
                     {"active_transfers", host_.activeTransfers()},
                     {"tls", tls_.enabled()},
                     {"cpus", numa::formatCpuList(cpus_->cpus())},
                     {"pipelined", settings_.pipelined},
                     {"transfers", std::move(transfers)},
                     {"received", std::move(received)}};
  if (server_) {
    out["listen"] = settings_.listen;
    out["port"] = server_->port();
    out["staging_directory"] = settings_.stagingDirectory;
  } else {
    out["listen"] = nullptr;
  }
  return out;
}

nlohmann::json TransferSubsystem::describe() const {
  size_t running = 0, total = 0;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, job] : jobs_) {
      std::lock_guard jobLock(job->mutex);
      ++total;
      running += job->active() ? 1 : 0;
    }
  }
  nlohmann::json out{{"host_bwlimit", host_.limit()},
                     {"sending", running},
                     {"sent_kept", total},
                     {"migrating", migrations_.inFlight()},
                     {"migration_downtime_limit_ms", migrations_.defaultDowntimeLimitMs()},
                     {"incoming_migrations", destinations_.list().size()},
                     {"receiving", server_ ? nlohmann::json(settings_.listen) : nullptr}};
  return out;
}

}  // namespace Atoll
