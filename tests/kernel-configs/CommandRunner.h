#pragma once
// Runs a built Atoll binary without a shell and collects what it printed, for
// the tests of `atoll check` on the host and in the test VM.
#include <string>
#include <vector>

namespace Atoll::test {

struct CommandOutput {
  std::string out;
  std::string err;
  int exitStatus = -1;  // -1 when it did not exit normally
};

// stdout comes through a pipe and stderr through a temporary file, so neither
// can fill up and block the child.
CommandOutput runCommand(const std::vector<std::string>& argv);

}  // namespace Atoll::test
