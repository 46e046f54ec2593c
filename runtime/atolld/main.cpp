// atolld: the per-host Atoll daemon. See runtime/Daemon.h for what it does and
// runtime/atolld.example.toml for its configuration.
#include <signal.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <cstdlib>
#include <iostream>

#include "runtime/Config.h"
#include "runtime/Daemon.h"
#include "runtime/Logging.h"
#include "runtime/SignalSet.h"

namespace {

// Exit codes: 0 clean stop or valid configuration; 1 runtime failure or a
// subsystem stuck at shutdown; 2 bad command line; 3 invalid configuration.
constexpr int kExitFailure = 1;
constexpr int kExitConfig = 3;

int checkConfig(const std::string& path) {
  Atoll::ConfigParse parsed = Atoll::loadConfigFile(path);
  if (parsed.ok()) {
    std::cout << path << ": configuration is valid\n";
    return 0;
  }
  for (const auto& error : parsed.errors) std::cerr << error.format() << "\n";
  std::cerr << path << ": " << parsed.errors.size()
            << (parsed.errors.size() == 1 ? " error" : " errors") << "\n";
  return kExitConfig;
}

}  // namespace

int main(int argc, char** argv) {
  // A peer that goes away (an API client, a metrics scraper, a transfer's
  // far end) must cost the daemon an EPIPE on that connection, not its life.
  ::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"atolld: the Atoll host daemon (resource islands, forecasts, placement)", "atolld"};
  app.set_version_flag("--version", std::string("atolld ") + ATOLL_VERSION);
  app.footer(
      "Signals: SIGHUP re-reads --config, SIGTERM/SIGINT drain and stop.\n"
      "Exit status: 0 clean stop or valid configuration, 1 failure, 2 bad command line, "
      "3 invalid configuration.");
  std::string configPath;
  std::string checkPath;
  std::string socketPath;
  std::string stateDirectory;
  std::string metricsListen;
  app.add_option("-c,--config", configPath,
                 "TOML configuration file (re-read on SIGHUP); built-in defaults without it");
  app.add_option("--check-config", checkPath,
                 "Validate FILE, print every error with file, line and key, and exit")
      ->excludes("--config");
  app.add_option("--socket", socketPath, "API socket path (overrides api.socket_path)");
  app.add_option("--state-dir", stateDirectory, "State directory (overrides state.directory)");
  app.add_option("--metrics-listen", metricsListen,
                 "Metrics address IPv4:port or [IPv6]:port (overrides metrics.listen)");
  CLI11_PARSE(app, argc, argv);

  if (!checkPath.empty()) return checkConfig(checkPath);

  // Before any thread exists, so every thread inherits the mask and the
  // signals wait in the signalfd for the main loop.
  Atoll::SignalSet::block();

  Atoll::DaemonOptions options;
  Atoll::DaemonConfig config = Atoll::defaultConfig();
  if (!configPath.empty()) {
    Atoll::ConfigParse parsed = Atoll::loadConfigFile(configPath);
    if (!parsed.ok()) {
      for (const auto& error : parsed.errors) std::cerr << error.format() << "\n";
      return kExitConfig;
    }
    config = std::move(parsed.config);
    options.configPath = configPath;
  }
  if (!socketPath.empty()) options.overrides.socketPath = socketPath;
  if (!stateDirectory.empty()) options.overrides.stateDirectory = stateDirectory;
  if (!metricsListen.empty()) {
    auto address = Atoll::ListenAddress::parse(metricsListen);
    if (!address) {
      std::cerr << "--metrics-listen '" << metricsListen << "': " << address.error().detail << "\n";
      return 2;
    }
    options.overrides.metricsListen = *address;
  }

  Atoll::startDaemonLogging(config.logLevel);
  int code = kExitFailure;
  {
    auto daemon = Atoll::Daemon::start(std::move(config), std::move(options));
    if (!daemon) {
      spdlog::critical("event=start_failed error=\"{}\"", daemon.error().message());
    } else {
      code = (*daemon)->run();
      if (code != 0) {
        // A subsystem thread is still running and uses the daemon's state:
        // leave without destroying it.
        Atoll::stopDaemonLogging();
        std::_Exit(code);
      }
    }
  }
  Atoll::stopDaemonLogging();
  return code;
}
