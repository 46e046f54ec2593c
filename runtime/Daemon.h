#pragma once
// atolld's composition and main loop.
//
// start(): open the state directory (snapshot, journal replay, torn tail
// dropped), register the subsystems, hand every action left in flight to the
// subsystem that began it (complete or roll back), run one tick so each
// subsystem converges the host to the desired state, then open the metrics
// endpoint and the API socket and tell systemd READY=1.
//
// run(): a fixed-rate tick (daemon.tick_ms) driven by the TickScheduler,
// woken early only by signals or requests: SIGHUP reloads the configuration
// (a bad file is rejected with its errors and the old one stays), SIGTERM or
// SIGINT drains: stop accepting API connections, let requests in progress and
// running phases finish (daemon.drain_timeout_ms), and return.
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "runtime/ActionLog.h"
#include "runtime/ApiRoutes.h"
#include "runtime/Config.h"
#include "runtime/DaemonMetrics.h"
#include "runtime/EmbeddedStateStore.h"
#include "runtime/ForecastSubsystem.h"
#include "runtime/HostJournal.h"
#include "runtime/HousekeepingSubsystem.h"
#include "runtime/IslandSubsystem.h"
#include "runtime/PlannerSubsystem.h"
#include "runtime/SignalSet.h"
#include "runtime/SystemdNotify.h"
#include "runtime/TickScheduler.h"
#include "runtime/UnixHttpServer.h"
#include "runtime/WorkloadBoard.h"
#include "util/UniqueFd.h"

namespace Atoll {

// Command-line values that win over the configuration file, also on reload.
struct DaemonOverrides {
  std::optional<std::string> socketPath;
  std::optional<std::string> stateDirectory;
  std::optional<ListenAddress> metricsListen;
  void applyTo(DaemonConfig& config) const;
};

struct DaemonOptions {
  // The file SIGHUP re-reads; nullopt when running on built-in defaults.
  std::optional<std::string> configPath;
  DaemonOverrides overrides;
  // Read SIGHUP/SIGTERM/SIGINT from a signalfd (the caller blocked them with
  // SignalSet::block() before starting threads). In-process users call
  // requestStop()/requestReload() instead.
  bool handleSignals = true;
  // Registered after the built-in subsystems, with their budgets.
  std::vector<std::pair<std::shared_ptr<Subsystem>, std::chrono::milliseconds>> extraSubsystems;
};

class Daemon {
 public:
  static Result<std::unique_ptr<Daemon>> start(DaemonConfig config, DaemonOptions options);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Runs until a stop is requested, then drains. 0 after a clean drain, 1
  // when a subsystem was still running at the end of the drain timeout.
  int run();
  // Thread-safe; wake the main loop.
  void requestStop();
  void requestReload();

  nlohmann::json status() const;
  // One tick, as the main loop runs it; only while run() is not running.
  TickReport tickOnce();

  StateStore& store() { return *store_; }
  ActionLog& actions() { return *actions_; }
  std::optional<uint16_t> metricsPort() const { return metrics_->port(); }
  DaemonConfig config() const;

 private:
  Daemon(DaemonConfig config, DaemonOptions options);
  Result<void> open();
  // The main job's subsystems: forecast (owns the forecaster), telemetry
  // (feeds it), planner, islands.
  Result<void> addHostSubsystems(
      const std::function<std::chrono::milliseconds(std::string_view)>& budgetOf);
  void recoverActions();
  void reload();
  int drain();
  void wake();

  mutable std::mutex configMutex_;
  DaemonConfig config_;
  DaemonOptions options_;
  uint64_t configGeneration_ = 1;
  nlohmann::json lastReload_;

  std::chrono::steady_clock::time_point startedSteady_;
  std::chrono::system_clock::time_point startedAt_;
  SystemdNotifier notifier_;
  std::optional<gid_t> adminGroup_;

  std::unique_ptr<EmbeddedStateStore> store_;
  std::unique_ptr<ActionLog> actions_;
  std::unique_ptr<HostJournal> journal_;
  std::unique_ptr<DaemonMetrics> metrics_;
  std::shared_ptr<HousekeepingSubsystem> housekeeping_;
  WorkloadBoard board_;
  std::shared_ptr<ForecastSubsystem> forecast_;
  std::shared_ptr<IslandSubsystem> islands_;
  std::shared_ptr<PlannerSubsystem> planner_;
  std::unique_ptr<TickScheduler> scheduler_;
  std::unique_ptr<ApiContext> apiContext_;
  std::unique_ptr<UnixHttpServer> api_;
  std::thread apiThread_;

  std::optional<SignalSet> signals_;
  UniqueFd wakeEvent_;
  std::atomic<bool> stopRequested_{false};
  std::atomic<bool> reloadRequested_{false};

  mutable std::mutex tickMutex_;
  uint64_t ticks_ = 0;
  uint64_t ticksMissed_ = 0;
  std::optional<TickReport> lastTick_;
  std::chrono::microseconds maxTickDuration_{0};
  std::vector<std::string> unrecoveredActions_;
};

}  // namespace Atoll
