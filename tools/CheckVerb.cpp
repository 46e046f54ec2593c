// Placeholder replaced by the capability check.
#include "tools/Verbs.h"
namespace Atoll::cli {
void addCheckVerb(CLI::App& app) {
  app.add_subcommand("check", "Report host capabilities");
}
}  // namespace Atoll::cli
