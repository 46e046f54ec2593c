#include "tests/kernel-configs/CommandRunner.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

namespace Atoll::test {

namespace {

void appendAll(int fd, std::string& into) {
  char buffer[4096];
  for (ssize_t n; (n = ::read(fd, buffer, sizeof buffer)) > 0;)
    into.append(buffer, static_cast<std::size_t>(n));
}

}  // namespace

CommandOutput runCommand(const std::vector<std::string>& argv) {
  CommandOutput result;
  char errPath[] = "/tmp/atoll-command-stderr-XXXXXX";
  int errFd = ::mkstemp(errPath);
  if (errFd < 0) return result;
  ::unlink(errPath);
  int fds[2];
  if (::pipe(fds) != 0) {
    ::close(errFd);
    return result;
  }
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(fds[1], STDOUT_FILENO);
    ::dup2(errFd, STDERR_FILENO);
    ::close(fds[0]);
    ::close(fds[1]);
    std::vector<char*> args;
    for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  appendAll(fds[0], result.out);
  ::close(fds[0]);
  int status = 0;
  if (pid > 0 && ::waitpid(pid, &status, 0) == pid && WIFEXITED(status))
    result.exitStatus = WEXITSTATUS(status);
  ::lseek(errFd, 0, SEEK_SET);
  appendAll(errFd, result.err);
  ::close(errFd);
  return result;
}

}  // namespace Atoll::test
