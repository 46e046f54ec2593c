#pragma once
// `atoll transfer migrate`: a QEMU live migration from this host through
// Atoll's stream tunnel to a peer running `atoll transfer serve --tunnel-to`.
#include <CLI/CLI.hpp>
#include <string>
#include <string_view>

namespace Atoll::cli {

// Adds the `migrate` subcommand to `atoll transfer`.
void addTransferMigrateSubcommand(CLI::App& transfer);

// `--downtime-limit MS`, QEMU's downtime-limit, as both migration commands
// (`atoll transfer migrate`, `atoll migration start`) take it; the text is
// checked with transfer::parseDowntimeLimitMs. `without` says what applies
// when the option is left out.
CLI::Option* addDowntimeLimitOption(CLI::App& command, std::string& into,
                                    std::string_view without = "QEMU's own setting stays");

}  // namespace Atoll::cli
