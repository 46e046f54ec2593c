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
// (socket, metrics address, state directory, API sizing).
std::vector<std::string> restartOnlyChanges(const DaemonConfig& running, const DaemonConfig& next);

}  // namespace Atoll
