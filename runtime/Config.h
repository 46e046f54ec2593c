#pragma once
// The daemon's configuration: built-in defaults, the TOML schema and its
// validation. Parsing is pure (text in, configuration or errors out), so
// `atolld --check-config`, SIGHUP reloads and the fuzz target share one code
// path and none of them touches the host. Every key is documented in
// runtime/atolld.example.toml.
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "migrate/planner/PlannerConfig.h"
#include "numa/Topology.h"
#include "runtime/ApiDefaults.h"
#include "runtime/CpuList.h"
#include "runtime/ListenAddress.h"

namespace Atoll {

struct ConfigError {
  std::string file;
  int line = 0;  // 1-based; 0 when the error has no position (e.g. unreadable file)
  int column = 0;
  std::string key;  // dotted path, e.g. "daemon.tick_ms"
  std::string message;

  // "FILE:LINE:COLUMN: KEY: MESSAGE"
  std::string format() const;
};

struct SubsystemSettings {
  std::chrono::milliseconds budget{0};
};

struct IslandSettings {
  std::string name;
  CpuSet cpus;
  CpuSet mems;  // empty: not restricted
  int line = 0;
};

// Longest forecast profile, in steps (the forecaster publishes at most this
// many), and longest season, in steps (a week at 5-minute steps).
inline constexpr int kMaxForecastSteps = 144;
inline constexpr int kMaxSeasonSteps = 2016;

// [telemetry]: which cgroups are workloads and which signals are read.
struct TelemetrySettings {
  bool enabled = true;
  // The cgroup2 mount; empty: detected (/sys/fs/cgroup on a unified host,
  // /sys/fs/cgroup/unified on a hybrid one).
  std::string cgroupMount;
  // Globs below the mount whose directories are workloads ('*' never crosses
  // a '/'); libvirt's domains are workloads in any case.
  std::vector<std::string> selectors = {"machine.slice/*"};
  std::string libvirtUri = "qemu:///system";  // empty: no libvirt discovery
  bool schedProbe = true;
  bool netProbe = true;
  bool blockProbe = true;
  int discoverEveryTicks = 5;
  // How long a discovery waits for libvirt's domain list before it goes on
  // with the last list libvirt gave.
  std::chrono::milliseconds libvirtTimeout{500};

  bool operator==(const TelemetrySettings&) const = default;
};

// [forecast]: the model step and the published profile's horizon.
struct ForecastSettings {
  std::chrono::seconds step{300};
  std::chrono::seconds horizon{6 * 3600};
  std::chrono::seconds season{24 * 3600};  // 0: no season

  int horizonSteps() const { return static_cast<int>(horizon / step); }
  int seasonSteps() const { return static_cast<int>(season / step); }
  bool operator==(const ForecastSettings&) const = default;
};

// [planner]: the mode (observe or enforce), per-island overrides and the
// planner's main knobs; everything else keeps PlannerConfig's defaults.
struct PlannerSettings {
  planner::PlannerConfig config;
  std::map<std::string, planner::Mode> islandModes;  // [planner.islands] NAME = "MODE"
};

// [transfer]: the transfer engine inside the daemon. It always sends what the
// API asks for; it receives only when `listen` is set.
struct TransferSettings {
  std::string listen;  // "HOST:PORT"; empty ("off"): the daemon receives nothing
  std::string stagingDirectory = "/var/lib/atoll/staging";
  // All three or none: TLS 1.3 with mutual authentication, both directions.
  std::string tlsCertificate;
  std::string tlsPrivateKey;
  std::string tlsCa;
  // Host-wide cap in bytes/s shared fairly among concurrent transfers; 0 =
  // none. Follows reloads, and PUT /v1/transfers/host-bwlimit changes it live.
  uint64_t hostBandwidth = 0;
  // The CPUs every transfer side runs on, one CPU each (the least busy;
  // migrate/transfer/TransferCpus.h); empty: wherever the scheduler puts it.
  // Only the syntax is checked here: whether the daemon may run on them is
  // checked when the transfer subsystem starts.
  numa::CpuList cpus;
  // Each transfer side hands its file or socket work to a second thread
  // (migrate/transfer/Pipeline.h); false: one thread per side.
  bool pipelined = false;
  // QEMU's downtime-limit in milliseconds for the live migrations this host
  // drives when a request names none; 0 keeps QEMU's own. Host policy rather
  // than per request: what pause a guest may see is the operator's call.
  // Follows reloads (migrations started afterwards use the new value).
  uint64_t downtimeLimitMs = 0;

  bool operator==(const TransferSettings&) const = default;
};

struct DaemonConfig {
  // Where the values came from: a file path, or kBuiltInSource.
  static constexpr std::string_view kBuiltInSource = "built-in defaults";
  std::string source = std::string(kBuiltInSource);

  // [daemon]
  std::chrono::milliseconds tick{1000};
  std::chrono::milliseconds drainTimeout{5000};
  std::string logLevel = "info";

  // [api]
  std::string socketPath = kDefaultSocketPath;
  std::string socketGroup = kDefaultAdminGroup;
  uint64_t maxBodyBytes = 64 * 1024;
  std::chrono::milliseconds requestTimeout{5000};
  unsigned apiThreads = 4;

  // [metrics]
  bool metricsEnabled = true;
  ListenAddress metricsListen{"127.0.0.1", 9464, false};

  // [state]
  std::string stateDirectory = "/var/lib/atoll";
  uint64_t compactJournalBytes = 4 * 1024 * 1024;

  // [subsystems.NAME], one entry per catalog subsystem
  std::map<std::string, SubsystemSettings> subsystems;

  // [islands.NAME] (validated here; the islands subsystem consumes them)
  std::vector<IslandSettings> islands;

  // [telemetry], [forecast]
  TelemetrySettings telemetry;
  ForecastSettings forecast;
  // [planner]
  PlannerSettings planner;
  // [transfer]
  TransferSettings transfer;
};

// Built-in defaults, including every catalog subsystem's default budget.
DaemonConfig defaultConfig();

struct ConfigParse {
  DaemonConfig config;
  std::vector<ConfigError> errors;
  bool ok() const { return errors.empty(); }
};

// Validates TOML text; `sourceName` names the file in errors and becomes
// config.source. Reports every error found, not only the first.
ConfigParse parseConfig(std::string_view text, std::string_view sourceName);
// Reads and validates a file; an unreadable file is one error without a line.
ConfigParse loadConfigFile(const std::string& path);

// Dotted keys that differ between the two and take effect only on restart
// (socket, metrics address, state directory, API sizing, telemetry and
// forecast settings, the planner's knobs other than its mode, the transfer
// engine's listener, staging directory, TLS files and CPUs).
std::vector<std::string> restartOnlyChanges(const DaemonConfig& running, const DaemonConfig& next);

}  // namespace Atoll
