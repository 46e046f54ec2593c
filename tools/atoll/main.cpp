// atoll: the operator's CLI. Verbs talk to the local atolld over its socket,
// or probe the host directly (check).
#include <CLI/CLI.hpp>

#include "tools/Verbs.h"

int main(int argc, char** argv) {
  CLI::App app{"atoll: resource islands, forecasts and proactive placement for KVM hosts", "atoll"};
  app.set_version_flag("--version", std::string("atoll ") + ATOLL_VERSION);
  app.require_subcommand(1);
  Atoll::cli::addCheckVerb(app);
  Atoll::cli::addStatusVerb(app);
  Atoll::cli::addStateVerb(app);
  Atoll::cli::addForecastVerb(app);
  Atoll::cli::addTransferVerb(app);
  Atoll::cli::addMigrationVerb(app);
  Atoll::cli::addTopVerb(app);
  Atoll::cli::addIslandVerb(app);
  Atoll::cli::addBenchVerb(app);
  Atoll::cli::addReplayVerb(app);
  Atoll::cli::addPlanVerb(app);
  Atoll::cli::addCompletionVerb(app);
  Atoll::cli::addManpageVerb(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    // CLI11 numbers each kind of parse error differently; scripts get the one
    // usage code. Verbs end with CLI::RuntimeError carrying their own code.
    if (code != 0 && e.get_name() != "RuntimeError") return Atoll::cli::kExitUsage;
    return code;
  }
  return 0;
}
