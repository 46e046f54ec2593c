// `atoll manpage`: prints atoll(1) in roff, generated from the CLI's own
// definitions (view it with `atoll manpage | man -l -`).
#include <memory>

#include "tools/CliDocs.h"
#include "tools/Verbs.h"

namespace Atoll::cli {

void addManpageVerb(CLI::App& app) {
  struct Options {
    std::string output;
    bool json = false;
  };
  auto options = std::make_shared<Options>();
  CLI::App* verb = app.add_subcommand("manpage", "Print the atoll(1) man page (roff)");
  verb->add_option("-o,--output", options->output, "Write to FILE instead of standard output");
  verb->add_flag("--json", options->json, "Print {\"kind\", \"text\"} as JSON");
  verb->callback([options, verb] {
    writeGeneratedText(manPage(rootOf(*verb), ATOLL_VERSION), "manpage", options->output,
                       options->json);
  });
}

}  // namespace Atoll::cli
