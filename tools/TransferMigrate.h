#pragma once
// `atoll transfer migrate`: a QEMU live migration from this host through
// Atoll's stream tunnel to a peer running `atoll transfer serve --tunnel-to`.
#include <CLI/CLI.hpp>

namespace Atoll::cli {

// Adds the `migrate` subcommand to `atoll transfer`.
void addTransferMigrateSubcommand(CLI::App& transfer);

}  // namespace Atoll::cli
