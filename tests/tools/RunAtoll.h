#pragma once
// Runs the built `atoll` binary (ATOLL_CLI_PATH, defined for the tools'
// test binaries) with the given arguments and returns its exit code and
// what it wrote, each stream captured in a file of its own scratch
// directory.
#include <sys/wait.h>

#include <cstdlib>
#include <string>

#include "tests/runtime/TestSupport.h"

namespace Atoll::test {

struct CommandResult {
  int exitCode = -1;
  std::string out;
  std::string err;
};

inline CommandResult runAtoll(const std::string& args) {
  TempDir dir;
  std::string command =
      std::string(ATOLL_CLI_PATH) + " " + args + " >" + dir.file("out") + " 2>" + dir.file("err");
  int status = std::system(command.c_str());
  CommandResult result;
  result.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.out = readTextFile(dir.file("out"));
  result.err = readTextFile(dir.file("err"));
  return result;
}

}  // namespace Atoll::test
