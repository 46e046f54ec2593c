#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "runtime/ApiRequests.h"
#include "runtime/Journal.h"
#include "tests/runtime/ApiHarness.h"

namespace Atoll {
namespace {

using namespace std::chrono_literals;
using test::httpRequest;
using test::rawExchange;

nlohmann::json bodyOf(const test::RawResponse& response) {
  return nlohmann::json::parse(response.body, nullptr, false);
}

// The test process as a member of the admin group, so these tests pass for
// root and non-root users alike.
AccessPolicy admitsThisProcess() {
  return AccessPolicy(::getgid(), "test-admins");
}

class Api : public ::testing::Test {
 protected:
  Api() : api(admitsThisProcess()) { api.start(); }
  test::RawResponse call(const std::string& method, const std::string& path,
                         const std::string& body = {},
                         const std::string& type = "application/json") {
    return rawExchange(api.socketPath(), httpRequest(method, path, body, type));
  }
  test::ApiHarness api;
};

TEST_F(Api, StatusAnswersJson) {
  auto response = call("GET", "/v1/status");
  ASSERT_EQ(response.status, 200) << response.raw;
  EXPECT_NE(response.head.find("Content-Type: application/json"), std::string::npos);
  EXPECT_EQ(bodyOf(response)["version"], "test");
}

TEST_F(Api, PutGetListDeleteAKey) {
  auto put = call("PUT", "/v1/state/vm/web-1/island", R"({"value": {"name": "latency"}})");
  ASSERT_EQ(put.status, 200) << put.raw;
  uint64_t revision = bodyOf(put)["revision"];
  EXPECT_GT(revision, 0u);

  auto get = call("GET", "/v1/state/vm/web-1/island");
  ASSERT_EQ(get.status, 200) << get.raw;
  EXPECT_EQ(bodyOf(get)["value"]["name"], "latency");
  EXPECT_EQ(bodyOf(get)["revision"], revision);

  ASSERT_EQ(call("PUT", "/v1/state/vm/web-2", R"({"value": 3})").status, 200);
  auto list = call("GET", "/v1/state?prefix=vm/web-1");
  ASSERT_EQ(list.status, 200);
  EXPECT_EQ(bodyOf(list)["entries"].size(), 1u);
  EXPECT_EQ(bodyOf(call("GET", "/v1/state"))["entries"].size(), 2u);

  auto removed = call("DELETE", "/v1/state/vm/web-1/island");
  ASSERT_EQ(removed.status, 200) << removed.raw;
  EXPECT_GT(bodyOf(removed)["revision"].get<uint64_t>(), revision);
  auto gone = call("GET", "/v1/state/vm/web-1/island");
  EXPECT_EQ(gone.status, 404);
  EXPECT_NE(bodyOf(gone)["error"].get<std::string>().find("vm/web-1/island"), std::string::npos);
  EXPECT_EQ(call("DELETE", "/v1/state/vm/web-1/island").status, 404);
}

TEST_F(Api, BadBodiesGet400WithTheReason) {
  struct Case {
    std::string body;
    std::string type;
    int status;
    std::string reason;
  };
  std::vector<Case> cases = {
      {"{\"value\": ", "application/json", 400, "not valid JSON"},
      {"[1, 2]", "application/json", 400, "got array"},
      {"{\"valu\": 1}", "application/json", 400, "missing the \"value\" field"},
      {"{\"value\": 1, \"extra\": 2}", "application/json", 400, "'extra'"},
      {"{\"value\": 1}", "text/plain", 415, "Content-Type must be application/json"},
  };
  for (const auto& c : cases) {
    auto response = call("PUT", "/v1/state/k", c.body, c.type);
    EXPECT_EQ(response.status, c.status) << c.body << "\n" << response.raw;
    auto body = bodyOf(response);
    ASSERT_TRUE(body.is_object() && body["error"].is_string()) << response.raw;
    EXPECT_NE(body["error"].get<std::string>().find(c.reason), std::string::npos) << body["error"];
  }
  EXPECT_TRUE(api.store().list(Keyspace::Desired, "")->empty());  // nothing changed
}

TEST_F(Api, BadKeysAndUnknownEndpointsAreRefused) {
  for (std::string key : {"a//b", "../etc", "a/./b", "sp%20ace", "x%00y"}) {
    auto response = call("PUT", "/v1/state/" + key, R"({"value": 1})");
    EXPECT_EQ(response.status, 400) << key << "\n" << response.raw;
  }
  auto missing = call("GET", "/v1/nothing");
  EXPECT_EQ(missing.status, 404);
  EXPECT_NE(bodyOf(missing)["error"].get<std::string>().find("GET /v1/nothing"), std::string::npos);
  EXPECT_EQ(call("POST", "/v1/status", "{}").status, 404);
}

TEST_F(Api, MalformedHttpGets400) {
  auto response = rawExchange(api.socketPath(), "GARBAGE\r\n\r\n");
  EXPECT_EQ(response.status, 400) << response.raw;
  EXPECT_EQ(bodyOf(response)["error"], "malformed HTTP request") << response.raw;
  response = rawExchange(api.socketPath(), "GET /v1/status HTTP/7.0\r\n\r\n");
  EXPECT_EQ(response.status, 400) << response.raw;
  // An error ends the connection: what follows a request that failed to parse
  // is never taken as a new request.
  EXPECT_EQ(response.raw.find("HTTP/1.1", 1), std::string::npos) << response.raw;
  response = rawExchange(api.socketPath(), "GET /v1/\xff\xfe HTTP/1.1\r\n\r\n");
  EXPECT_EQ(response.status, 404) << response.raw;
  EXPECT_TRUE(bodyOf(response).contains("error")) << response.raw;
}

TEST_F(Api, HugeBodiesGet413AndChangeNothing) {
  std::string body = "{\"value\": \"" + std::string(200 * 1024, 'x') + "\"}";
  auto response = call("PUT", "/v1/state/big", body);
  EXPECT_EQ(response.status, 413) << response.raw.substr(0, 300);
  EXPECT_NE(bodyOf(response)["error"].get<std::string>().find("65536"), std::string::npos);
  // A claimed length far beyond the limit, with no body behind it.
  auto claimed = rawExchange(api.socketPath(),
                             "PUT /v1/state/big HTTP/1.1\r\nContent-Type: application/json\r\n"
                             "Content-Length: 99999999999\r\n\r\n");
  EXPECT_EQ(claimed.status, 413) << claimed.raw;
  EXPECT_FALSE(*api.store().get(Keyspace::Desired, "big"));
  EXPECT_EQ(call("GET", "/v1/status").status, 200);
}

// The body limit is checked against Content-Length before a byte of the body
// is read. A chunked body would be read whole whatever its size, so it is
// refused (411) before it is read; a request with neither header has no body
// (RFC 9112), so what follows it is not read as one. Neither changes anything.
TEST_F(Api, BodiesWithoutContentLengthAreNotReadPastTheLimit) {
  const std::string value = "{\"value\": \"" + std::string(200 * 1024, 'x') + "\"}";
  char size[32];
  std::snprintf(size, sizeof size, "%zx", value.size());
  auto chunked = rawExchange(api.socketPath(),
                             "PUT /v1/state/big HTTP/1.1\r\nContent-Type: application/json\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n" +
                                 std::string(size) + "\r\n" + value + "\r\n0\r\n\r\n");
  EXPECT_EQ(chunked.status, 411) << chunked.raw.substr(0, 300);
  EXPECT_NE(bodyOf(chunked)["error"].get<std::string>().find("Content-Length"), std::string::npos)
      << chunked.raw.substr(0, 300);
  EXPECT_FALSE(*api.store().get(Keyspace::Desired, "big"));
  auto post = rawExchange(api.socketPath(),
                          "POST /v1/islands HTTP/1.1\r\nContent-Type: application/json\r\n"
                          "Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n2\r\n{}\r\n0"
                          "\r\n\r\n");
  EXPECT_EQ(post.status, 411) << post.raw.substr(0, 300);
  auto unsized = rawExchange(api.socketPath(),
                             "PUT /v1/state/big HTTP/1.1\r\nContent-Type: application/json\r\n"
                             "Connection: close\r\n\r\n" +
                                 value);
  EXPECT_EQ(unsized.status, 400) << unsized.raw.substr(0, 300);
  EXPECT_FALSE(*api.store().get(Keyspace::Desired, "big"));
  EXPECT_EQ(call("GET", "/v1/status").status, 200);
  EXPECT_EQ(call("DELETE", "/v1/state/absent").status, 404);
}

TEST(ApiSlowClients, AreCutOffWithoutStallingOthers) {
  test::ApiHarness api(admitsThisProcess(), /*requestTimeout=*/1500ms);
  api.start();
  // One client sends half a request line and waits; another trickles bytes.
  int error = 0;
  UniqueFd silent = test::connectUnix(api.socketPath(), &error);
  ASSERT_TRUE(silent.valid());
  ASSERT_GT(::send(silent.get(), "GET /v1/sta", 11, MSG_NOSIGNAL), 0);
  UniqueFd trickle = test::connectUnix(api.socketPath(), &error);
  ASSERT_TRUE(trickle.valid());
  std::atomic<bool> trickling{true};
  std::thread trickler([&] {
    std::string request = httpRequest("GET", "/v1/status");
    for (char c : request) {
      if (!trickling || ::send(trickle.get(), &c, 1, MSG_NOSIGNAL) <= 0) break;
      std::this_thread::sleep_for(100ms);
    }
  });

  // Others are served meanwhile, well before the slow clients' deadline.
  auto started = std::chrono::steady_clock::now();
  auto response = rawExchange(api.socketPath(), httpRequest("GET", "/v1/status"));
  EXPECT_EQ(response.status, 200);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1000ms);

  // Both slow connections are closed by the server once the request deadline
  // (1.5 s here) passes, without an answer.
  for (int fd : {silent.get(), trickle.get()}) {
    pollfd p{fd, POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 6000), 1) << "the server kept a slow client";
    char buffer[512];
    ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    std::string got = n > 0 ? std::string(buffer, static_cast<size_t>(n)) : "";
    EXPECT_EQ(got.find("200 OK"), std::string::npos) << got;
  }
  EXPECT_GE(std::chrono::steady_clock::now() - started, 1000ms);
  trickling = false;
  trickler.join();
}

TEST_F(Api, KeepAliveServesSeveralRequestsOnOneConnection) {
  std::string two =
      "GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /v1/state HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  auto response = rawExchange(api.socketPath(), two);
  size_t first = response.raw.find("HTTP/1.1 200");
  ASSERT_NE(first, std::string::npos) << response.raw;
  EXPECT_NE(response.raw.find("HTTP/1.1 200", first + 1), std::string::npos) << response.raw;
}

// A client cannot claim another identity with the headers the server uses to
// pass the kernel's view of the peer to the routes.
TEST_F(Api, PeerIdentityHeadersFromClientsAreReplaced) {
  std::string request =
      "PUT /v1/state/spoof HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
      "Atoll-Peer-Uid: 4242\r\nAtoll-Peer-Pid: 1\r\natoll-peer-uid: 4343\r\n"
      "Content-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"value\": 1}";
  auto response = rawExchange(api.socketPath(), request);
  ASSERT_EQ(response.status, 200) << response.raw;
  auto scan = scanJournal(test::readTextFile(api.dir().file("state/journal")), "journal");
  ASSERT_TRUE(scan);
  auto record = nlohmann::json::parse(scan->records.back().payload);
  EXPECT_EQ(record["key"], "spoof");
  EXPECT_EQ(record["origin"]["uid"], ::getuid());
  EXPECT_EQ(record["origin"]["pid"], ::getpid());
}

TEST(ApiAccess, APeerOutsideThePolicyCannotEvenRead) {
  if (::getuid() == 0) GTEST_SKIP() << "root is always admitted; kernel_runtime covers refusal";
  test::ApiHarness api(AccessPolicy(std::nullopt, "atoll"));
  api.start();
  auto response = rawExchange(api.socketPath(), httpRequest("GET", "/v1/status"));
  EXPECT_EQ(response.status, 403);
  EXPECT_NE(response.body.find("is not root"), std::string::npos) << response.body;
}

TEST(ApiServer, RefusesToReplaceALiveSocketOrAForeignFile) {
  test::ApiHarness first(admitsThisProcess());
  first.start();
  UnixHttpServer::Options options;
  options.socketPath = first.socketPath();
  UnixHttpServer second(options);
  auto bound = second.bindSocket();
  ASSERT_FALSE(bound);
  EXPECT_NE(bound.error().message().find("another atolld"), std::string::npos);

  test::TempDir tmp;
  test::writeTextFile(tmp.file("file"), "keep me");
  options.socketPath = tmp.file("file");
  UnixHttpServer third(options);
  ASSERT_FALSE(third.bindSocket());
  EXPECT_EQ(test::readTextFile(tmp.file("file")), "keep me");
}

TEST(ApiServer, ReplacesAStaleSocketAndRemovesItsOwnOnExit) {
  test::TempDir tmp;
  std::string path = tmp.file("api.sock");
  {
    // A socket file nobody listens on: what a killed daemon leaves behind.
    UniqueFd dead(::socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), path.size());
    ASSERT_EQ(::bind(dead.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  }
  {
    UnixHttpServer::Options options;
    options.socketPath = path;
    UnixHttpServer server(options);
    ASSERT_TRUE(server.bindSocket());
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0660u);
  }
  EXPECT_NE(::access(path.c_str(), F_OK), 0);
}

TEST(ApiRequests, ValidatesKeys) {
  EXPECT_TRUE(validateStateKey("vm/web-1/island"));
  EXPECT_TRUE(validateStateKey("a:b.c_d-e"));
  EXPECT_FALSE(validateStateKey(""));
  EXPECT_FALSE(validateStateKey(std::string(257, 'a')));
  EXPECT_FALSE(validateStateKey("/abs"));
  EXPECT_FALSE(validateStateKey("trailing/"));
  EXPECT_FALSE(validateStateKey("a/../b"));
  EXPECT_FALSE(validateStateKey("new\nline"));
}

}  // namespace
}  // namespace Atoll
