// `atoll completion bash`: prints the bash completion script generated from
// the CLI's own definitions.
#include <memory>

#include "tools/CliDocs.h"
#include "tools/Verbs.h"

namespace Atoll::cli {

void addCompletionVerb(CLI::App& app) {
  struct Options {
    std::string shell;
    std::string output;
    bool json = false;
  };
  auto options = std::make_shared<Options>();
  CLI::App* verb = app.add_subcommand("completion", "Print the shell completion script");
  verb->add_option("shell", options->shell, "Shell to complete for")
      ->required()
      ->check(CLI::IsMember({"bash"}));
  verb->add_option("-o,--output", options->output, "Write to FILE instead of standard output");
  verb->add_flag("--json", options->json, "Print {\"kind\", \"text\"} as JSON");
  verb->footer("Install: atoll completion bash > /etc/bash_completion.d/atoll");
  verb->callback([options, verb] {
    writeGeneratedText(bashCompletion(rootOf(*verb)), "bash-completion", options->output,
                       options->json);
  });
}

}  // namespace Atoll::cli
