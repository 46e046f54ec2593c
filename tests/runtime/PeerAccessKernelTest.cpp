// Access control on the API socket with real users: a child process drops to
// `nobody` and connects. Needs root (to switch users).
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "tests/runtime/ApiHarness.h"

namespace Atoll {
namespace {

constexpr uid_t kNobody = 65534;

struct ChildResult {
  int connectErrno = -1;
  test::RawResponse response;
};

// Forks a child that takes `uid`/`gid` (no supplementary groups), connects
// to `socketPath` and sends `request`; the parent collects what it got. The
// child uses only system calls on memory prepared before fork().
ChildResult exchangeAs(uid_t uid, gid_t gid, const std::string& socketPath,
                       const std::string& request) {
  int pipeFds[2];
  if (::pipe(pipeFds) != 0) return {};
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, socketPath.data(), socketPath.size());
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(pipeFds[0]);
    int error = 0;
    if (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) ::_exit(90);
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) error = errno;
    [[maybe_unused]] ssize_t w = ::write(pipeFds[1], &error, sizeof error);
    if (error == 0) {
      w = ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
      ::shutdown(fd, SHUT_WR);
      char buffer[4096];
      ssize_t n;
      while ((n = ::recv(fd, buffer, sizeof buffer, 0)) > 0)
        w = ::write(pipeFds[1], buffer, static_cast<size_t>(n));
    }
    ::_exit(0);
  }
  ::close(pipeFds[1]);
  ChildResult result;
  std::string received;
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(pipeFds[0], buffer, sizeof buffer)) > 0)
    received.append(buffer, static_cast<size_t>(n));
  ::close(pipeFds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (received.size() >= sizeof(int)) {
    std::memcpy(&result.connectErrno, received.data(), sizeof(int));
    result.response = test::parseRawResponse(received.substr(sizeof(int)));
  }
  return result;
}

class PeerAccess : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a client as another user";
  }
};

TEST_F(PeerAccess, TheDefaultSocketModeKeepsOtherUsersOut) {
  test::ApiHarness api;  // root only: no admin group
  api.start();
  struct stat st {};
  ASSERT_EQ(::stat(api.socketPath().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  auto child =
      exchangeAs(kNobody, kNobody, api.socketPath(), test::httpRequest("GET", "/v1/status"));
  EXPECT_EQ(child.connectErrno, EACCES);
}

TEST_F(PeerAccess, PeerCredentialsRefuseOthersEvenWhenTheSocketIsOpen) {
  test::ApiHarness api;
  api.start();
  // A socket left world-writable by mistake: the kernel's peer credentials
  // still decide.
  ASSERT_EQ(::chmod(api.socketPath().c_str(), 0666), 0);
  auto read =
      exchangeAs(kNobody, kNobody, api.socketPath(), test::httpRequest("GET", "/v1/status"));
  ASSERT_EQ(read.connectErrno, 0);
  EXPECT_EQ(read.response.status, 403) << read.response.raw;
  EXPECT_NE(read.response.body.find("uid 65534"), std::string::npos) << read.response.body;
  auto write = exchangeAs(kNobody, kNobody, api.socketPath(),
                          test::httpRequest("PUT", "/v1/state/x", R"({"value": 1})"));
  EXPECT_EQ(write.response.status, 403);
  EXPECT_FALSE(*api.store().get(Keyspace::Desired, "x"));
  // Root is admitted.
  EXPECT_EQ(test::rawExchange(api.socketPath(), test::httpRequest("GET", "/v1/status")).status,
            200);
}

TEST_F(PeerAccess, MembersOfTheAdminGroupMayReadAndChangeState) {
  // `nogroup` stands in for `atoll`: the policy is the same for any group.
  auto group = lookupGroup("nogroup");
  ASSERT_TRUE(group);
  if (!*group) GTEST_SKIP() << "this host has no group 'nogroup'";
  gid_t admins = **group;
  test::ApiHarness api(AccessPolicy(admins, "nogroup"));
  api.start();
  ASSERT_EQ(::chown(api.socketPath().c_str(), static_cast<uid_t>(-1), admins), 0);
  auto write = exchangeAs(kNobody, admins, api.socketPath(),
                          test::httpRequest("PUT", "/v1/state/by-member", R"({"value": 1})"));
  ASSERT_EQ(write.connectErrno, 0);
  EXPECT_EQ(write.response.status, 200) << write.response.raw;
  EXPECT_TRUE(*api.store().get(Keyspace::Desired, "by-member"));
  // The same user outside the group does not get through the socket's mode.
  auto outsider =
      exchangeAs(kNobody, admins + 1, api.socketPath(), test::httpRequest("GET", "/v1/status"));
  EXPECT_EQ(outsider.connectErrno, EACCES);
}

}  // namespace
}  // namespace Atoll
