// Bash completion and man page generated from a CLI11 tree.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "tests/runtime/TestSupport.h"
#include "tools/CliDocs.h"

namespace Atoll::cli {
namespace {

std::unique_ptr<CLI::App> sampleApp() {
  auto app = std::make_unique<CLI::App>("atoll: sample tree - for tests", "atoll");
  static bool json = false;
  static std::string socket;
  static double timeout = 1;
  static std::string key;
  CLI::App* status = app->add_subcommand("status", "Show status");
  status->add_flag("--json", json, "JSON output");
  status->add_option("--socket", socket, "Socket path");
  status->add_option("--timeout", timeout, "Seconds")->check(CLI::Range(0.1, 10.0));
  CLI::App* state = app->add_subcommand("state", "State verbs");
  CLI::App* get = state->add_subcommand("get", "Get a key");
  get->add_option("key", key, "The key")->required();
  get->footer(".dotted footer line with a \\ backslash");
  return app;
}

// Runs the generated script in bash and asks it for completions of `line`.
std::string complete(const std::string& script, const std::string& line) {
  test::TempDir dir;
  std::string scriptPath = dir.file("completion.bash");
  test::writeTextFile(scriptPath, script);
  std::string driver = dir.file("driver.bash");
  test::writeTextFile(driver, "source '" + scriptPath + "'\n" + "COMP_LINE='" + line + "'\n" +
                                  "read -ra COMP_WORDS <<< \"$COMP_LINE\"\n" +
                                  "[[ $COMP_LINE == *' ' ]] && COMP_WORDS+=('')\n" +
                                  "COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))\n" + "_atoll\n" +
                                  "printf '%s\\n' \"${COMPREPLY[@]}\" | LC_ALL=C sort\n");
  std::string output;
  FILE* pipe = ::popen(("cd '" + dir.path() + "' && bash '" + driver + "' 2>&1").c_str(), "r");
  char buffer[256];
  while (pipe != nullptr && fgets(buffer, sizeof buffer, pipe) != nullptr) output += buffer;
  if (pipe != nullptr) ::pclose(pipe);
  return output;
}

TEST(BashCompletion, CompletesVerbsOptionsAndNestedVerbs) {
  auto app = sampleApp();
  std::string script = bashCompletion(*app);
  EXPECT_EQ(complete(script, "atoll st"), "state\nstatus\n");
  EXPECT_EQ(complete(script, "atoll status --"), "--help\n--json\n--socket\n--timeout\n");
  EXPECT_EQ(complete(script, "atoll state "), "--help\n-h\nget\n");
  EXPECT_EQ(complete(script, "atoll state get -"), "--help\n-h\n");
  // A numeric option's value gets no file names; a text option's does.
  EXPECT_EQ(complete(script, "atoll status --timeout "), "\n");
  EXPECT_NE(complete(script, "atoll status --socket driv"), "\n");
  EXPECT_EQ(complete(script, "atoll status --socket driv"), "driver.bash\n");
}

TEST(ManPage, DescribesEveryVerbAndOptionInValidRoff) {
  auto app = sampleApp();
  std::string page = manPage(*app, "9.9.9");
  EXPECT_EQ(page.rfind(".TH ATOLL 1 ", 0), 0u);
  EXPECT_NE(page.find("atoll \\- sample tree \\- for tests"), std::string::npos) << page;
  for (const char* expected :
       {".SS \"atoll status\"", ".SS \"atoll state get\"", "\\fB\\-\\-timeout\\fR \\fIFLOAT\\fR",
        "\\fIkey\\fR", ".SH EXIT STATUS", "atoll 9.9.9"})
    EXPECT_NE(page.find(expected), std::string::npos) << expected << "\n" << page;
  // A footer starting with '.' must not become a roff request.
  EXPECT_NE(page.find("\\&.dotted footer line with a \\e backslash"), std::string::npos) << page;

  if (std::system("command -v groff >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "groff is not installed; roff validity not checked";
  test::TempDir dir;
  test::writeTextFile(dir.file("atoll.1"), page);
  std::string command = "groff -man -Tutf8 -ww -z '" + dir.file("atoll.1") + "' 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  std::string warnings;
  char buffer[256];
  while (fgets(buffer, sizeof buffer, pipe) != nullptr) warnings += buffer;
  EXPECT_EQ(::pclose(pipe), 0);
  EXPECT_EQ(warnings, "");
}

}  // namespace
}  // namespace Atoll::cli
