#include "runtime/Daemon.h"

#include <fmt/chrono.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include "runtime/Logging.h"
#include "runtime/SelfMetricsSubsystem.h"
#include "runtime/TelemetrySubsystem.h"
#include "runtime/TransferSubsystem.h"

namespace Atoll {

namespace {

using Clock = std::chrono::steady_clock;

std::string isoTime(std::chrono::system_clock::time_point t) {
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}Z", fmt::gmtime(std::chrono::system_clock::to_time_t(t)));
}

// The transfer engine, found by name: it lives in the scheduler like every
// subsystem, and the API, reloads and the drain reach it through here.
std::shared_ptr<TransferSubsystem> transferSubsystem(const TickScheduler& scheduler) {
  return std::dynamic_pointer_cast<TransferSubsystem>(scheduler.find("transfer"));
}

std::string hostName() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "unknown";
  return name;
}

nlohmann::json tickJson(const TickReport& report) {
  nlohmann::json subsystems = nlohmann::json::array();
  for (const auto& s : report.subsystems) {
    nlohmann::json phases = nlohmann::json::object();
    for (const auto& run : s.phases) {
      nlohmann::json p = {{"us", run.elapsed.count()}, {"finished", run.finished}};
      if (!run.error.empty()) p["error"] = run.error;
      phases[std::string(phaseName(run.phase))] = std::move(p);
    }
    subsystems.push_back({{"name", s.name},
                          {"used_us", s.used.count()},
                          {"overran", s.overran},
                          {"skipped", s.skipped},
                          {"phases", std::move(phases)}});
  }
  return {{"tick", report.tick},
          {"started_at", isoTime(report.startedAt)},
          {"duration_us", report.duration.count()},
          {"subsystems", std::move(subsystems)}};
}

}  // namespace

void DaemonOverrides::applyTo(DaemonConfig& config) const {
  if (socketPath) config.socketPath = *socketPath;
  if (stateDirectory) config.stateDirectory = *stateDirectory;
  if (metricsListen) config.metricsListen = *metricsListen;
}

Daemon::Daemon(DaemonConfig config, DaemonOptions options)
    : config_(std::move(config)),
      options_(std::move(options)),
      startedSteady_(Clock::now()),
      startedAt_(std::chrono::system_clock::now()),
      notifier_(SystemdNotifier::fromEnvironment()) {
  options_.overrides.applyTo(config_);
  lastReload_ = nullptr;
}

Daemon::~Daemon() {
  if (api_) api_->stop();
  if (apiThread_.joinable()) apiThread_.join();
  if (scheduler_) scheduler_->stop(std::chrono::milliseconds(0));
}

Result<std::unique_ptr<Daemon>> Daemon::start(DaemonConfig config, DaemonOptions options) {
  std::unique_ptr<Daemon> daemon(new Daemon(std::move(config), std::move(options)));
  if (auto opened = daemon->open(); !opened) return opened.error();
  return daemon;
}

Result<void> Daemon::open() {
  const DaemonConfig& c = config_;
  spdlog::info("event=starting version={} config=\"{}\" state_directory={} socket={}",
               ATOLL_VERSION, c.source, c.stateDirectory, c.socketPath);

  wakeEvent_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wakeEvent_.valid()) return Error::fromErrno("eventfd", "", errno);
  if (options_.handleSignals) {
    auto signals = SignalSet::open();
    if (!signals) return signals.error();
    signals_ = std::move(*signals);
  }

  auto group = lookupGroup(c.socketGroup);
  if (!group) return group.error();
  adminGroup_ = *group;
  if (!adminGroup_ && !c.socketGroup.empty())
    spdlog::info("event=admin_group_absent group={} effect=\"only root may use the API\"",
                 c.socketGroup);

  // Durable state first: nothing else may run on a state directory another
  // daemon holds, or on a journal that fails to replay.
  store_ = std::make_unique<EmbeddedStateStore>();
  actions_ = std::make_unique<ActionLog>();
  auto journal = HostJournal::open(c.stateDirectory, {store_.get(), actions_.get()});
  if (!journal) return journal.error();
  journal_ = std::move(*journal);
  store_->attach(*journal_);
  actions_->attach(*journal_);
  JournalStats stats = journal_->stats();
  if (stats.droppedTailBytes > 0)
    spdlog::warn("event=journal_torn_tail_dropped bytes={} reason=\"{}\"", stats.droppedTailBytes,
                 stats.droppedTailReason);
  spdlog::info("event=journal_replayed records={} snapshot_sequence={} last_sequence={} keys={}",
               stats.replayedRecords, stats.snapshotSequence, stats.lastSequence,
               store_->size(Keyspace::Desired));

  metrics_ = std::make_unique<DaemonMetrics>(ATOLL_VERSION);
  scheduler_ = std::make_unique<TickScheduler>();
  std::function<std::chrono::milliseconds(std::string_view)> budgetOf = [&](std::string_view name) {
    auto it = c.subsystems.find(std::string(name));
    return it == c.subsystems.end() ? std::chrono::milliseconds(10) : it->second.budget;
  };
  housekeeping_ = std::make_shared<HousekeepingSubsystem>(*journal_, metrics_->registry(),
                                                          c.compactJournalBytes);
  scheduler_->add(housekeeping_, budgetOf(housekeeping_->name()));
  auto self = SelfMetricsSubsystem::create(metrics_->registry());
  if (!self) return self.error();
  scheduler_->add(*self, budgetOf((*self)->name()));
  if (auto added = addHostSubsystems(budgetOf); !added) return added.error();
  // Transfers run on threads of their own; it receives only with [transfer] listen.
  // A migration's start may outlast the API's reply deadline: POST
  // /v1/migrations waits for it only that long, less a margin.
  MigrationTiming migrationTiming;
  migrationTiming.startReplyWait = startReplyWaitFor(c.requestTimeout);
  auto transfers = TransferSubsystem::create(c.transfer, migrationTiming);
  if (!transfers) return transfers.error();
  scheduler_->add(*transfers, budgetOf((*transfers)->name()));
  for (auto& [subsystem, budget] : options_.extraSubsystems) scheduler_->add(subsystem, budget);

  // What other hosts (and operators) may know about this daemon.
  auto published = store_->put(
      Keyspace::Facts, "hosts/" + hostName() + "/atolld",
      {{"version", ATOLL_VERSION}, {"pid", ::getpid()}, {"started_at", isoTime(startedAt_)}},
      ChangeOrigin{::getuid(), ::getpid(), "daemon"});
  if (!published) return published.error();

  recoverActions();
  // The convergence pass: every subsystem compares the desired state with
  // what the kernel shows and acts, before anyone is told we are ready.
  tickOnce();

  if (c.metricsEnabled) {
    if (auto exposed = metrics_->expose(c.metricsListen); !exposed) return exposed.error();
  }

  UnixHttpServer::Options apiOptions;
  apiOptions.socketPath = c.socketPath;
  apiOptions.socketGroup = adminGroup_;
  apiOptions.requestTimeout = c.requestTimeout;
  apiOptions.threads = c.apiThreads;
  apiOptions.maxBodyBytes = c.maxBodyBytes;
  api_ = std::make_unique<UnixHttpServer>(apiOptions);
  apiContext_ = std::unique_ptr<ApiContext>(new ApiContext{
      *store_, AccessPolicy(adminGroup_, c.socketGroup), [this] { return status(); },
      metrics_.get(), c.maxBodyBytes, &board_, forecast_.get(), islands_.get(), planner_.get()});
  apiContext_->transfers = transfers->get();
  installApiRoutes(*api_, *apiContext_);
  if (auto bound = api_->bindSocket(); !bound) return bound.error();
  apiThread_ = std::thread([this] { api_->serve(); });

  spdlog::info(
      "event=ready socket={} metrics={} tick_ms={} subsystems={}", c.socketPath,
      c.metricsEnabled ? metrics_->port() ? std::to_string(*metrics_->port()) : "?" : "off",
      c.tick.count(), scheduler_->status().size());
  if (auto sent = notifier_.notify("READY=1\nSTATUS=serving on " + c.socketPath); !sent)
    spdlog::warn("event=notify_failed error=\"{}\"", sent.error().message());
  return ok();
}

Result<void> Daemon::addHostSubsystems(
    const std::function<std::chrono::milliseconds(std::string_view)>& budgetOf) {
  const DaemonConfig& c = config_;
  const std::string cgroupMount = collectorOptions(c.telemetry).cgroupMount;
  auto configuredIslands = [this] { return config().islands; };
  long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  auto forecast = ForecastSubsystem::create(c.forecast, board_, configuredIslands,
                                            std::string(numa::kDefaultManagedRoot),
                                            cpus > 0 ? static_cast<unsigned>(cpus) : 1u);
  if (!forecast) return forecast.error();
  forecast_ = *forecast;
  if (c.telemetry.enabled) {
    auto telemetry = std::make_shared<TelemetrySubsystem>(c.telemetry, forecast_->ring(), board_,
                                                          metrics_->registry());
    scheduler_->add(telemetry, budgetOf(telemetry->name()));
  } else {
    board_.markUnavailable("telemetry is disabled in the configuration ([telemetry] enabled)");
    spdlog::info("event=telemetry_disabled");
  }
  scheduler_->add(forecast_, budgetOf(forecast_->name()));
  // The planner acts before the islands subsystem in the act phase, so a
  // resize it decides is applied in the same tick.
  auto createdPlanner = PlannerSubsystem::create(
      [this] { return config().planner; }, *forecast_, board_, configuredIslands, *store_,
      metrics_->registry(), cpus > 0 ? static_cast<unsigned>(cpus) : 1u);
  if (!createdPlanner) return createdPlanner.error();
  planner_ = *createdPlanner;
  scheduler_->add(planner_, budgetOf(planner_->name()));
  islands_ = std::make_shared<IslandSubsystem>(*store_, *actions_, configuredIslands, cgroupMount);
  islands_->usePinners(IslandSubsystem::libvirtPinners(c.telemetry.libvirtUri));
  scheduler_->add(islands_, budgetOf(islands_->name()));
  return ok();
}

void Daemon::recoverActions() {
  for (const PendingAction& action : actions_->pending()) {
    auto owner = scheduler_->find(action.subsystem);
    if (!owner) {
      spdlog::error(
          "event=action_unowned id={} subsystem={} kind={} effect=\"left in flight until that "
          "subsystem runs again\"",
          action.id, action.subsystem, action.kind);
      unrecoveredActions_.push_back(std::to_string(action.id) + ": no subsystem '" +
                                    action.subsystem + "'");
      continue;
    }
    Result<ActionOutcome> outcome = Error::invalid("recover", "", "", "not attempted");
    try {
      outcome = owner->recover(action);
    } catch (const std::exception& e) {
      outcome = Error::invalid("recover action", action.subsystem, action.kind, e.what());
    }
    if (!outcome) {
      spdlog::error("event=action_recovery_failed id={} subsystem={} kind={} error=\"{}\"",
                    action.id, action.subsystem, action.kind, outcome.error().message());
      unrecoveredActions_.push_back(std::to_string(action.id) + ": " + outcome.error().message());
      continue;
    }
    if (auto finished = actions_->finish(action.id, *outcome, "recovered at start"); !finished) {
      spdlog::error("event=action_finish_failed id={} error=\"{}\"", action.id,
                    finished.error().message());
      continue;
    }
    spdlog::warn("event=action_recovered id={} subsystem={} kind={} outcome={}", action.id,
                 action.subsystem, action.kind, actionOutcomeName(*outcome));
  }
}

TickReport Daemon::tickOnce() {
  std::chrono::milliseconds interval;
  {
    std::lock_guard lock(configMutex_);
    interval = config_.tick;
  }
  uint64_t number;
  {
    std::lock_guard lock(tickMutex_);
    number = ++ticks_;
  }
  TickReport report = scheduler_->runTick(number, interval);
  metrics_->recordTick(report);
  std::lock_guard lock(tickMutex_);
  maxTickDuration_ = std::max(maxTickDuration_, report.duration);
  lastTick_ = report;
  return report;
}

void Daemon::wake() {
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wakeEvent_.get(), &one, sizeof one);
}

void Daemon::requestStop() {
  stopRequested_ = true;
  wake();
}

void Daemon::requestReload() {
  reloadRequested_ = true;
  wake();
}

int Daemon::run() {
  auto interval = config().tick;
  auto nextTick = Clock::now() + interval;
  std::optional<std::chrono::microseconds> watchdog = notifier_.watchdogInterval();
  auto nextWatchdog = Clock::now();

  while (!stopRequested_) {
    auto now = Clock::now();
    auto until = nextTick;
    if (watchdog) until = std::min(until, nextWatchdog);
    auto wait = std::chrono::duration_cast<std::chrono::nanoseconds>(until - now);
    if (wait.count() < 0) wait = std::chrono::nanoseconds(0);
    timespec timeout{static_cast<time_t>(wait.count() / 1'000'000'000),
                     static_cast<long>(wait.count() % 1'000'000'000)};
    pollfd fds[2] = {{wakeEvent_.get(), POLLIN, 0}, {signals_ ? signals_->fd() : -1, POLLIN, 0}};
    int rc = ::ppoll(fds, signals_ ? 2 : 1, &timeout, nullptr);
    if (rc < 0 && errno != EINTR) {
      spdlog::critical("event=main_loop_failed error=\"ppoll: {}\"", std::strerror(errno));
      break;
    }
    if (rc > 0 && (fds[0].revents & POLLIN)) {
      uint64_t count;
      [[maybe_unused]] ssize_t n = ::read(wakeEvent_.get(), &count, sizeof count);
    }
    if (signals_) {
      while (auto signal = signals_->next()) {
        if (*signal == SIGHUP) {
          reloadRequested_ = true;
        } else {
          spdlog::info("event=signal signal={}", ::strsignal(*signal));
          stopRequested_ = true;
        }
      }
    }
    if (stopRequested_) break;
    if (reloadRequested_.exchange(false)) {
      reload();
      auto newInterval = config().tick;
      if (newInterval != interval) {
        interval = newInterval;
        nextTick = Clock::now() + interval;
      }
    }

    now = Clock::now();
    if (now >= nextTick) {
      tickOnce();
      nextTick += interval;
      now = Clock::now();
      if (nextTick <= now) {
        // The tick ran past its slot: skip the slots it covered rather than
        // running ticks back to back to catch up.
        auto behind = now - nextTick;
        uint64_t missed = static_cast<uint64_t>(behind / interval) + 1;
        nextTick += interval * static_cast<int64_t>(missed);
        metrics_->recordMissedTicks(missed);
        {
          std::lock_guard lock(tickMutex_);
          ticksMissed_ += missed;
        }
        spdlog::warn("event=ticks_missed count={}", missed);
      }
    }
    if (watchdog && Clock::now() >= nextWatchdog) {
      (void)notifier_.notify("WATCHDOG=1");
      nextWatchdog = Clock::now() + *watchdog;
    }
  }
  return drain();
}

void Daemon::reload() {
  std::optional<std::string> path = options_.configPath;
  if (!path) {
    spdlog::warn(
        "event=reload_ignored reason=\"running on built-in defaults; no file to re-read\"");
    std::lock_guard lock(configMutex_);
    lastReload_ = {{"result", "ignored"},
                   {"at", isoTime(std::chrono::system_clock::now())},
                   {"reason", "running on built-in defaults; no file to re-read"}};
    return;
  }
  (void)notifier_.notify("RELOADING=1");
  ConfigParse parsed = loadConfigFile(*path);
  if (!parsed.ok()) {
    nlohmann::json errors = nlohmann::json::array();
    for (const auto& error : parsed.errors) {
      spdlog::error("event=config_rejected error=\"{}\"", error.format());
      errors.push_back(error.format());
    }
    spdlog::error(
        "event=reload_rejected file={} errors={} effect=\"the running configuration "
        "stays in force\"",
        *path, parsed.errors.size());
    metrics_->recordReload(false);
    {
      std::lock_guard lock(configMutex_);
      lastReload_ = {{"result", "rejected"},
                     {"at", isoTime(std::chrono::system_clock::now())},
                     {"errors", std::move(errors)}};
    }
    (void)notifier_.notify("READY=1\nSTATUS=configuration reload rejected");
    return;
  }

  DaemonConfig next = std::move(parsed.config);
  options_.overrides.applyTo(next);
  std::vector<std::string> restartOnly;
  bool hostCapChanged = false;
  bool downtimeLimitChanged = false;
  {
    std::lock_guard lock(configMutex_);
    restartOnly = restartOnlyChanges(config_, next);
    // Values that need a restart keep their running value until then.
    next.socketPath = config_.socketPath;
    next.socketGroup = config_.socketGroup;
    next.maxBodyBytes = config_.maxBodyBytes;
    next.requestTimeout = config_.requestTimeout;
    next.apiThreads = config_.apiThreads;
    next.metricsEnabled = config_.metricsEnabled;
    next.metricsListen = config_.metricsListen;
    next.stateDirectory = config_.stateDirectory;
    next.telemetry = config_.telemetry;
    next.forecast = config_.forecast;
    // The planner's knobs are fixed at start; its mode and overrides follow.
    const planner::Mode mode = next.planner.config.mode;
    next.planner.config = config_.planner.config;
    next.planner.config.mode = mode;
    // The transfer endpoint and TLS files are fixed at start; the host cap
    // and the migrations' default downtime limit follow.
    const uint64_t hostCap = next.transfer.hostBandwidth;
    const uint64_t downtimeLimit = next.transfer.downtimeLimitMs;
    hostCapChanged = hostCap != config_.transfer.hostBandwidth;
    downtimeLimitChanged = downtimeLimit != config_.transfer.downtimeLimitMs;
    next.transfer = config_.transfer;
    next.transfer.hostBandwidth = hostCap;
    next.transfer.downtimeLimitMs = downtimeLimit;
  }
  setLogLevel(next.logLevel);
  for (const auto& [name, settings] : next.subsystems) scheduler_->setBudget(name, settings.budget);
  housekeeping_->setCompactJournalBytes(next.compactJournalBytes);
  if (auto transfers = transferSubsystem(*scheduler_)) {
    if (hostCapChanged) transfers->setHostLimit(next.transfer.hostBandwidth);
    if (downtimeLimitChanged) transfers->setMigrationDowntimeLimit(next.transfer.downtimeLimitMs);
  }
  for (const auto& key : restartOnly)
    spdlog::warn(
        "event=reload_needs_restart key={} effect=\"the running value stays until "
        "atolld restarts\"",
        key);
  uint64_t generation;
  {
    std::lock_guard lock(configMutex_);
    config_ = std::move(next);
    generation = ++configGeneration_;
    lastReload_ = {{"result", "accepted"},
                   {"at", isoTime(std::chrono::system_clock::now())},
                   {"restart_required", restartOnly}};
  }
  metrics_->recordReload(true);
  spdlog::info("event=reload_accepted file={} generation={}", *path, generation);
  (void)notifier_.notify("READY=1\nSTATUS=configuration generation " + std::to_string(generation));
}

int Daemon::drain() {
  auto timeout = config().drainTimeout;
  spdlog::info("event=draining timeout_ms={}", timeout.count());
  (void)notifier_.notify("STOPPING=1");
  api_->stop();
  if (apiThread_.joinable()) apiThread_.join();
  // Transfers still running are cancelled; the receivers keep what they
  // verified, so the same request resumes after the restart.
  if (auto transfers = transferSubsystem(*scheduler_)) transfers->stop();
  std::vector<std::string> stuck = scheduler_->stop(timeout);
  for (const auto& name : stuck)
    spdlog::error("event=subsystem_stuck_at_exit subsystem={} timeout_ms={}", name,
                  timeout.count());
  JournalStats stats = journal_->stats();
  spdlog::info("event=stopped last_sequence={} journal_bytes={}", stats.lastSequence,
               stats.journalBytes);
  return stuck.empty() ? 0 : 1;
}

DaemonConfig Daemon::config() const {
  std::lock_guard lock(configMutex_);
  return config_;
}

nlohmann::json Daemon::status() const {
  nlohmann::json out;
  DaemonConfig c = config();
  out["version"] = ATOLL_VERSION;
  out["pid"] = ::getpid();
  out["started_at"] = isoTime(startedAt_);
  out["uptime_seconds"] = std::chrono::duration<double>(Clock::now() - startedSteady_).count();
  {
    std::lock_guard lock(configMutex_);
    out["config"] = {
        {"source", c.source}, {"generation", configGeneration_}, {"last_reload", lastReload_}};
  }
  out["api"] = {{"socket", c.socketPath},
                {"admin_group", c.socketGroup},
                {"admin_group_exists", adminGroup_.has_value()}};
  out["metrics"] = {{"enabled", c.metricsEnabled}, {"listen", c.metricsListen.toString()}};
  if (auto port = metrics_->port()) out["metrics"]["port"] = *port;
  {
    std::lock_guard lock(tickMutex_);
    out["tick"] = {{"interval_ms", c.tick.count()},
                   {"count", ticks_},
                   {"missed", ticksMissed_},
                   {"max_duration_us", maxTickDuration_.count()},
                   {"last", lastTick_ ? tickJson(*lastTick_) : nlohmann::json(nullptr)}};
  }
  nlohmann::json subsystems = nlohmann::json::array();
  for (const SubsystemStatus& s : scheduler_->status()) {
    nlohmann::json phases = nlohmann::json::array();
    for (Phase p : s.phases) phases.push_back(phaseName(p));
    nlohmann::json entry = {{"name", s.name},
                            {"state", s.state},
                            {"budget_ms", s.budget.count()},
                            {"phases", std::move(phases)},
                            {"ticks", s.ticks},
                            {"overruns", s.overruns},
                            {"failures", s.failures},
                            {"last_error", s.lastError},
                            {"details", s.details}};
    if (s.last) {
      entry["last_used_us"] = s.last->used.count();
      nlohmann::json lastPhases = nlohmann::json::object();
      for (const auto& run : s.last->phases)
        lastPhases[std::string(phaseName(run.phase))] = run.elapsed.count();
      entry["last_phase_us"] = std::move(lastPhases);
    }
    subsystems.push_back(std::move(entry));
  }
  out["subsystems"] = std::move(subsystems);
  JournalStats stats = journal_->stats();
  out["state"] = {{"store", store_->kind()},
                  {"directory", stats.directory},
                  {"revision", store_->revision()},
                  {"desired_keys", store_->size(Keyspace::Desired)},
                  {"fact_keys", store_->size(Keyspace::Facts)},
                  {"journal_bytes", stats.journalBytes},
                  {"journal_records", stats.journalRecords},
                  {"last_sequence", stats.lastSequence},
                  {"snapshot_sequence", stats.snapshotSequence},
                  {"replayed_at_start", stats.replayedRecords},
                  {"torn_tail_bytes_dropped_at_start", stats.droppedTailBytes}};
  nlohmann::json pending = nlohmann::json::array();
  for (const auto& action : actions_->pending())
    pending.push_back({{"id", action.id}, {"subsystem", action.subsystem}, {"kind", action.kind}});
  out["actions"] = {{"in_flight", std::move(pending)},
                    {"finished", actions_->finishedCount()},
                    {"unrecovered_at_start", unrecoveredActions_}};
  out["islands"] = nlohmann::json::array();
  for (const auto& island : c.islands)
    out["islands"].push_back({{"name", island.name},
                              {"cpus", island.cpus.toString()},
                              {"mems", island.mems.toString()}});
  return out;
}

}  // namespace Atoll
