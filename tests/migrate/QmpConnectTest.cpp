// How the QMP client waits for QEMU's monitor socket: it waits for a socket
// that QEMU has not created yet, and for one created but not yet listening,
// but a socket left behind by a QEMU that is gone fails at once rather than
// after the whole timeout.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>

#include "migrate/qemu/QmpClient.h"
#include "util/UniqueFd.h"

namespace Atoll::qemu {
namespace {

using namespace std::chrono_literals;

class QmpConnect : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("atoll-qmp-connect-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  static UniqueFd bound(const std::string& path) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    EXPECT_TRUE(fd.valid());
    EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0)
        << path << ": " << std::strerror(errno);
    return fd;
  }

  // Listens on `fd`, then answers one client as QEMU's monitor does: the
  // greeting (after `before`, which QEMU may send first), then an empty
  // return for qmp_capabilities.
  static void serveGreeting(const UniqueFd& fd, const std::string& before = "") {
    ASSERT_EQ(::listen(fd.get(), 1), 0);
    UniqueFd client(::accept4(fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
    ASSERT_TRUE(client.valid());
    const std::string greeting = before + R"({"QMP": {"version": {}, "capabilities": []}})"
                                          "\r\n";
    ASSERT_EQ(::send(client.get(), greeting.data(), greeting.size(), MSG_NOSIGNAL),
              ssize_t(greeting.size()));
    char command[512];
    ASSERT_GT(::recv(client.get(), command, sizeof command, 0), 0);
    const std::string reply = R"({"return": {}})"
                              "\r\n";
    ASSERT_EQ(::send(client.get(), reply.data(), reply.size(), MSG_NOSIGNAL),
              ssize_t(reply.size()));
  }

  std::filesystem::path dir_;
};

TEST_F(QmpConnect, WaitsForASocketQemuHasNotCreatedYet) {
  const std::string socket = path("later.qmp");
  std::thread qemu([&] {
    std::this_thread::sleep_for(300ms);
    UniqueFd fd = bound(socket);
    serveGreeting(fd);
  });
  auto client = QmpClient::connect(socket, 20s);
  qemu.join();
  EXPECT_TRUE(client) << client.error().message();
}

TEST_F(QmpConnect, WaitsForASocketCreatedButNotYetListening) {
  const std::string socket = path("binding.qmp");
  UniqueFd fd = bound(socket);
  std::thread qemu([&] {
    std::this_thread::sleep_for(300ms);
    serveGreeting(fd);
  });
  auto client = QmpClient::connect(socket, 20s);
  qemu.join();
  EXPECT_TRUE(client) << client.error().message();
}

// QEMU 7.2 started with -incoming emits MIGRATION "setup" at start; a client
// that connects at that moment can read it before the greeting.
TEST_F(QmpConnect, AnEventBeforeTheGreetingIsKeptAsAnEvent) {
  const std::string socket = path("early-event.qmp");
  UniqueFd fd = bound(socket);
  const std::string event =
      R"({"timestamp": {"seconds": 1, "microseconds": 2}, "event": "MIGRATION", )"
      R"("data": {"status": "setup"}})"
      "\r\n";
  std::thread qemu([&] { serveGreeting(fd, event); });
  auto client = QmpClient::connect(socket, 20s);
  qemu.join();
  ASSERT_TRUE(client) << client.error().message();
  ASSERT_EQ(client->events().size(), 1u);
  EXPECT_EQ(client->events()[0].value("event", ""), "MIGRATION");
}

TEST_F(QmpConnect, AMessageThatIsNeitherGreetingNorEventIsRefused) {
  const std::string socket = path("not-qmp.qmp");
  UniqueFd fd = bound(socket);
  std::thread server([&] {
    ASSERT_EQ(::listen(fd.get(), 1), 0);
    UniqueFd client(::accept4(fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
    const std::string hello = R"({"hello": "world"})"
                              "\r\n";
    ASSERT_EQ(::send(client.get(), hello.data(), hello.size(), MSG_NOSIGNAL),
              ssize_t(hello.size()));
  });
  auto client = QmpClient::connect(socket, 20s);
  server.join();
  ASSERT_FALSE(client);
  EXPECT_NE(client.error().message().find("not a QMP greeting"), std::string::npos)
      << client.error().message();
}

TEST_F(QmpConnect, ASocketLeftBehindFailsWithoutWaitingOutTheTimeout) {
  const std::string socket = path("stale.qmp");
  UniqueFd leftBehind = bound(socket);  // bound, and nothing will ever listen
  const auto asked = std::chrono::steady_clock::now();
  auto client = QmpClient::connect(socket, 20s);
  const auto waited = std::chrono::steady_clock::now() - asked;
  ASSERT_FALSE(client);
  EXPECT_EQ(client.error().errnum, ECONNREFUSED);
  EXPECT_NE(client.error().message().find(socket), std::string::npos) << client.error().message();
  // Refusals are retried only over the bind-to-listen grace (1 s), not the
  // 20 s asked for.
  EXPECT_LT(waited, 10s);
}

}  // namespace
}  // namespace Atoll::qemu
