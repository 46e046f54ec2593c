// Parsers and protocols between the daemon and its process environment:
// /proc/self/stat, the systemd notification socket, peer credentials.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "runtime/PeerCredentials.h"
#include "runtime/ProcStat.h"
#include "runtime/SystemdNotify.h"
#include "tests/runtime/TestSupport.h"

namespace Atoll {
namespace {

TEST(ProcStat, ParsesFieldsAfterTheCommandName) {
  // The command name holds spaces and ')' itself.
  std::string line =
      "4242 (atolld (x) y) S 1 4242 4242 0 -1 4194560 1510 0 0 0 37 12 0 0 20 0 9 0 "
      "123456 104857600 3210 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n";
  auto stat = parseProcStat(line);
  ASSERT_TRUE(stat) << stat.error().message();
  EXPECT_EQ(stat->userTicks, 37u);
  EXPECT_EQ(stat->systemTicks, 12u);
  EXPECT_EQ(stat->threads, 9u);
  EXPECT_EQ(stat->residentPages, 3210u);
}

TEST(ProcStat, RejectsTruncatedOrGarbledLines) {
  EXPECT_FALSE(parseProcStat("4242 (atolld) S 1 2 3"));
  EXPECT_FALSE(parseProcStat("no parenthesis at all"));
  auto garbled =
      parseProcStat("1 (a) S 1 1 1 0 -1 0 0 0 0 0 xx 12 0 0 20 0 9 0 1 1 1 1 1 1 0 0 0 0 0");
  ASSERT_FALSE(garbled);
  EXPECT_NE(garbled.error().detail.find("field 14 'xx'"), std::string::npos);
}

TEST(SystemdNotify, WithoutNotifySocketEverythingIsANoOp) {
  SystemdNotifier notifier("");
  EXPECT_FALSE(notifier.enabled());
  EXPECT_TRUE(notifier.notify("READY=1"));
  EXPECT_FALSE(notifier.watchdogInterval());
}

std::string receiveDatagram(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 2000) <= 0) return "";
  char buffer[512];
  ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
  return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : "";
}

TEST(SystemdNotify, SendsDatagramsToAPathSocket) {
  test::TempDir tmp;
  std::string path = tmp.file("notify");
  UniqueFd server(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  ASSERT_EQ(::bind(server.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  SystemdNotifier notifier(path, std::chrono::microseconds(30'000'000));
  ASSERT_TRUE(notifier.enabled());
  ASSERT_TRUE(notifier.notify("READY=1\nSTATUS=serving"));
  EXPECT_EQ(receiveDatagram(server.get()), "READY=1\nSTATUS=serving");
  EXPECT_EQ(notifier.watchdogInterval(), std::chrono::microseconds(15'000'000));
}

TEST(SystemdNotify, SendsDatagramsToAnAbstractSocket) {
  std::string name = "atoll-test-notify-" + std::to_string(::getpid());
  UniqueFd server(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path + 1, name.data(), name.size());
  socklen_t length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  ASSERT_EQ(::bind(server.get(), reinterpret_cast<sockaddr*>(&addr), length), 0);
  SystemdNotifier notifier("@" + name);
  ASSERT_TRUE(notifier.notify("STOPPING=1"));
  EXPECT_EQ(receiveDatagram(server.get()), "STOPPING=1");
}

TEST(SystemdNotify, AMissingSocketIsAnErrorNamingIt) {
  SystemdNotifier notifier("/nonexistent/atoll-notify");
  auto sent = notifier.notify("READY=1");
  ASSERT_FALSE(sent);
  EXPECT_NE(sent.error().message().find("/nonexistent/atoll-notify"), std::string::npos);
}

TEST(PeerCredentials, ReadsTheConnectingProcess) {
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  UniqueFd a(pair[0]), b(pair[1]);
  auto peer = readPeerCredentials(a.get());
  ASSERT_TRUE(peer) << peer.error().message();
  EXPECT_EQ(peer->pid, ::getpid());
  EXPECT_EQ(peer->uid, ::getuid());
  EXPECT_EQ(peer->gid, ::getgid());
}

TEST(AccessPolicy, RootAndTheAdminGroupOnly) {
  AccessPolicy withGroup(gid_t{990}, "atoll");
  AccessPolicy withoutGroup(std::nullopt, "atoll");
  PeerCredentials root{1, 0, 0, {}};
  PeerCredentials primary{2, 1000, 990, {}};
  PeerCredentials supplementary{3, 1000, 1000, {27, 990}};
  PeerCredentials stranger{4, 1000, 1000, {27}};
  EXPECT_TRUE(withGroup.allows(root));
  EXPECT_TRUE(withGroup.allows(primary));
  EXPECT_TRUE(withGroup.allows(supplementary));
  EXPECT_FALSE(withGroup.allows(stranger));
  EXPECT_TRUE(withoutGroup.allows(root));
  EXPECT_FALSE(withoutGroup.allows(primary));
  EXPECT_NE(withGroup.refusal(stranger).find("uid 1000"), std::string::npos);
  EXPECT_NE(withoutGroup.refusal(stranger).find("does not exist"), std::string::npos);
}

TEST(AccessPolicy, LooksUpGroupsByName) {
  auto root = lookupGroup("root");
  ASSERT_TRUE(root);
  ASSERT_TRUE(*root);
  EXPECT_EQ(**root, 0u);
  auto missing = lookupGroup("atoll-no-such-group");
  ASSERT_TRUE(missing);
  EXPECT_FALSE(*missing);
}

}  // namespace
}  // namespace Atoll
