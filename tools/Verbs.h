#pragma once
// Each verb of the `atoll` CLI lives in its own file and registers itself on
// the root app here. A verb reports failure by throwing CLI::RuntimeError with
// its exit code, so CLI11 handles --help and exit codes in one place.
#include <CLI/CLI.hpp>

namespace Atoll::cli {

// Exit codes shared by every verb.
enum ExitCode : int {
  kExitOk = 0,
  kExitFailure = 1,      // the operation failed or the host lacks something required
  kExitUsage = 2,        // bad command-line input (CLI11's own code for parse errors)
  kExitUnavailable = 3,  // the daemon is not running or cannot be reached
  kExitPermission = 4,   // the caller may not do this
};

void addCheckVerb(CLI::App& app);
void addStatusVerb(CLI::App& app);
void addStateVerb(CLI::App& app);
void addCompletionVerb(CLI::App& app);
void addManpageVerb(CLI::App& app);
void addForecastVerb(CLI::App& app);
void addTransferVerb(CLI::App& app);
void addMigrationVerb(CLI::App& app);
void addTopVerb(CLI::App& app);
void addIslandVerb(CLI::App& app);
void addBenchVerb(CLI::App& app);
void addReplayVerb(CLI::App& app);
void addPlanVerb(CLI::App& app);

}  // namespace Atoll::cli
