// `atoll status` run as an unprivileged user against a real atolld. Needs
// root to start the daemon and switch users.
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/runtime/TestSupport.h"

namespace Atoll {
namespace {

TEST(CliPermission, ANonRootNonGroupUserIsToldItLacksPermission) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run the CLI as another user";
  test::TempDir dir;
  std::string failure;
  auto daemon = test::DaemonProcess::start(dir.path(), test::daemonArgsIn(dir), &failure);
  ASSERT_TRUE(daemon) << failure;

  std::string errPath = dir.file("err");
  std::string cli = ATOLL_CLI_PATH;
  std::string socketPath = dir.file("atolld.sock");
  auto runAsNobody = [&]() {
    pid_t pid = ::fork();
    if (pid == 0) {
      int err = ::open(errPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0666);
      ::dup2(err, STDERR_FILENO);
      if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(90);
      ::execl(cli.c_str(), cli.c_str(), "status", "--socket", socketPath.c_str(), nullptr);
      ::_exit(91);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };

  // The socket's mode refuses the connection.
  EXPECT_EQ(runAsNobody(), 4);
  EXPECT_NE(test::readTextFile(errPath).find("permission denied on " + socketPath),
            std::string::npos)
      << test::readTextFile(errPath);

  // With the mode opened, the daemon refuses by peer credentials.
  ASSERT_EQ(::chmod(socketPath.c_str(), 0666), 0);
  EXPECT_EQ(runAsNobody(), 4);
  EXPECT_NE(test::readTextFile(errPath).find("atolld refused the request: uid 65534"),
            std::string::npos)
      << test::readTextFile(errPath);
}

}  // namespace
}  // namespace Atoll
