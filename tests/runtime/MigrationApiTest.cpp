// The daemon's migration routes without a QEMU: every refusal of POST
// /v1/migrations and POST /v1/migrations/incoming names the field and its
// value and registers or starts nothing, a daemon without a receiving
// endpoint says which setting it lacks, a destination registered with a
// real socket is listed and removed, a source QEMU that cannot be reached
// is a 502 naming its socket and listed as failed (with the downtime limit
// applied: the request's own, else the host's default), a start that outlasts
// the API's deadline is answered 202 "starting" in time and then listed as
// failed with its reason, and stopping waits for a start in progress.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "migrate/transfer/Rate.h"
#include "migrate/transfer/TunnelDestinations.h"
#include "runtime/MigrationRequests.h"
#include "runtime/TransferSubsystem.h"
#include "tests/runtime/ApiHarness.h"
#include "tests/runtime/TestSupport.h"

namespace Atoll {
namespace {

using namespace std::chrono_literals;
using test::httpRequest;
using test::rawExchange;

struct Reply {
  int status = 0;
  nlohmann::json body;
  std::string error() const { return body.is_object() ? body.value("error", "") : ""; }
};

Reply call(const std::string& socket, const std::string& method, const std::string& path,
           const nlohmann::json& body = nullptr) {
  auto response = rawExchange(
      socket, httpRequest(method, path, body.is_null() ? std::string() : body.dump()), 10s);
  return {response.status, nlohmann::json::parse(response.body, nullptr, false)};
}

// A unix socket bound at `path`, listening when asked: what a QEMU's
// -qmp or -incoming unix: socket looks like on disk.
UniqueFd boundSocket(const std::string& path, bool listening) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  if (!fd.valid() || ::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
    throw std::runtime_error("bind " + path + ": " + std::strerror(errno));
  if (listening && ::listen(fd.get(), 4) != 0)
    throw std::runtime_error("listen " + path + ": " + std::strerror(errno));
  return fd;
}

// The error names the field and the offending value as the client sent it.
void expectRefusal(const Reply& reply, int status, const std::string& field,
                   const std::string& value) {
  EXPECT_EQ(reply.status, status) << reply.body.dump();
  EXPECT_NE(reply.error().find(field), std::string::npos)
      << "the error does not name the field " << field << ": " << reply.error();
  EXPECT_NE(reply.error().find(value), std::string::npos)
      << "the error does not name the value " << value << ": " << reply.error();
}

class MigrationApi : public testing::Test {
 protected:
  // The harness's request deadline is the daemon's default, so a start
  // that takes longer than the API allows loses its reply here too.
  MigrationApi() : api(AccessPolicy(std::nullopt, "atoll"), 5000ms) {}

  void SetUp() override {
    TransferSettings settings;
    settings.listen = "127.0.0.1:0";
    settings.stagingDirectory = api.dir().file("staging");
    auto receiving = TransferSubsystem::create(settings);
    ASSERT_TRUE(receiving) << receiving.error().message();
    transfers = *receiving;
    api.context().transfers = transfers.get();
    api.start();
    socket = api.socketPath();
  }
  void TearDown() override {
    api.stop();
    if (transfers) transfers->stop();
  }

  Reply post(const std::string& path, const nlohmann::json& body) {
    return call(socket, "POST", path, body);
  }

  test::ApiHarness api;
  std::shared_ptr<TransferSubsystem> transfers;
  std::string socket;
};

TEST_F(MigrationApi, MigrationRequestRefusalsNameTheFieldAndValue) {
  const std::string qmp = api.dir().file("qmp.sock");
  const nlohmann::json valid{{"qmp", qmp}, {"peer", "127.0.0.1:7477"}};
  auto with = [&](const std::string& key, const nlohmann::json& value) {
    nlohmann::json body = valid;
    body[key] = value;
    return body;
  };
  expectRefusal(post("/v1/migrations", with("qmp", "relative/qmp.sock")), 400, "qmp",
                "relative/qmp.sock");
  expectRefusal(post("/v1/migrations", with("qmp", 7)), 400, "qmp", "7");
  expectRefusal(post("/v1/migrations", with("peer", "nowhere")), 400, "peer", "nowhere");
  expectRefusal(post("/v1/migrations", with("peer", "127.0.0.1:0")), 400, "peer", "127.0.0.1:0");
  expectRefusal(post("/v1/migrations", with("tunnel_id", "xyz")), 400, "tunnel_id", "xyz");
  expectRefusal(post("/v1/migrations", with("tunnel_id", "0")), 400, "tunnel_id", "0");
  expectRefusal(post("/v1/migrations", with("channels", 0)), 400, "channels", "0");
  expectRefusal(post("/v1/migrations", with("channels", 65)), 400, "channels", "65");
  expectRefusal(post("/v1/migrations", with("bwlimit", 0)), 400, "bwlimit", "0");
  expectRefusal(post("/v1/migrations", with("bwlimit", "0")), 400, "bwlimit", "\"0\"");
  expectRefusal(post("/v1/migrations", with("bwlimit", "fast")), 400, "bwlimit", "fast");
  // As an integer, the same ceiling as the rate parser's for text.
  expectRefusal(post("/v1/migrations", with("bwlimit", "9.2e18")), 400, "bwlimit", "9.2e18");
  expectRefusal(post("/v1/migrations", with("bwlimit", uint64_t{9'200'000'000'000'000'000u})), 400,
                "bwlimit", "9200000000000000000");
  expectRefusal(post("/v1/migrations", with("bwlimit", UINT64_MAX)), 400, "bwlimit",
                "18446744073709551615");
  expectRefusal(post("/v1/migrations", with("downtime_limit_ms", 0)), 400, "downtime_limit_ms",
                "'0'");
  expectRefusal(post("/v1/migrations", with("downtime_limit_ms", -50)), 400, "downtime_limit_ms",
                "-50");
  expectRefusal(post("/v1/migrations", with("downtime_limit_ms", 2000001)), 400,
                "downtime_limit_ms", "2000001");
  expectRefusal(post("/v1/migrations", with("downtime_limit_ms", "50")), 400, "downtime_limit_ms",
                "\"50\"");
  expectRefusal(post("/v1/migrations", with("downtime_limit_ms", 50.5)), 400, "downtime_limit_ms",
                "50.5");
  expectRefusal(post("/v1/migrations", with("relay", "yes")), 400, "relay", "yes");
  expectRefusal(post("/v1/migrations", with("timeout_s", -1)), 400, "timeout_s", "-1");
  expectRefusal(post("/v1/migrations", with("speed", 1)), 400, "speed", "unknown field");
  expectRefusal(post("/v1/migrations", {{"peer", "127.0.0.1:7477"}}), 400, "qmp",
                "required field missing");
  expectRefusal(post("/v1/migrations", {{"qmp", qmp}}), 400, "peer", "required field missing");
  EXPECT_EQ(call(socket, "POST", "/v1/migrations").status, 400);

  // Nothing started.
  auto listed = call(socket, "GET", "/v1/migrations");
  ASSERT_EQ(listed.status, 200) << listed.body.dump();
  EXPECT_TRUE(listed.body["migrations"].empty()) << listed.body.dump();
}

TEST_F(MigrationApi, AcceptedRequestsCarryEveryField) {
  auto request = parseMigrationRequest(
      R"({"qmp": "/run/vm1.qmp", "peer": "10.0.0.2:7477", "tunnel_id": "00000000000000ab",
          "channels": 4, "bwlimit": "1G", "downtime_limit_ms": 50, "relay": true,
          "timeout_s": 1.5})");
  ASSERT_TRUE(request) << request.error().message();
  EXPECT_EQ(request->migration.qmpSocket, "/run/vm1.qmp");
  EXPECT_EQ(request->migration.peer.text(), "10.0.0.2:7477");
  EXPECT_EQ(request->migration.tunnelId, 0xabu);
  EXPECT_EQ(request->migration.channels, 4u);
  EXPECT_EQ(request->migration.bandwidth, 1024u * 1024 * 1024);
  EXPECT_EQ(request->migration.downtimeLimitMs, 50u);
  EXPECT_TRUE(request->migration.relay);
  EXPECT_EQ(request->timeout, 1500ms);

  auto defaults = parseMigrationRequest(R"({"qmp": "/run/vm1.qmp", "peer": "10.0.0.2:7477"})");
  ASSERT_TRUE(defaults) << defaults.error().message();
  EXPECT_EQ(defaults->migration.tunnelId, 0u);
  EXPECT_EQ(defaults->migration.channels, 1u);
  EXPECT_EQ(defaults->migration.bandwidth, 0u);
  EXPECT_EQ(defaults->migration.downtimeLimitMs, 0u);

  // The largest QEMU takes, and the smallest.
  for (uint64_t limit : {uint64_t(1), transfer::kMaxDowntimeLimitMs}) {
    auto edge = parseMigrationRequest(
        R"({"qmp": "/run/vm1.qmp", "peer": "10.0.0.2:7477", "downtime_limit_ms": )" +
        std::to_string(limit) + "}");
    ASSERT_TRUE(edge) << limit << ": " << edge.error().message();
    EXPECT_EQ(edge->migration.downtimeLimitMs, limit);
  }
  EXPECT_FALSE(defaults->migration.relay);
  EXPECT_EQ(defaults->timeout, 0ms);

  // The largest rate, as an integer: one below the ceiling.
  auto fastest =
      parseMigrationRequest(R"({"qmp": "/run/vm1.qmp", "peer": "10.0.0.2:7477", "bwlimit": )" +
                            std::to_string(transfer::kRateCeiling - 1) + "}");
  ASSERT_TRUE(fastest) << fastest.error().message();
  EXPECT_EQ(fastest->migration.bandwidth, transfer::kRateCeiling - 1);

  // A timeout below a millisecond is still one: 0 would mean none.
  auto brief = parseMigrationRequest(
      R"({"qmp": "/run/vm1.qmp", "peer": "10.0.0.2:7477", "timeout_s": 0.0004})");
  ASSERT_TRUE(brief) << brief.error().message();
  EXPECT_EQ(brief->timeout, 1ms);
}

TEST_F(MigrationApi, IncomingRefusalsNameThePathAndWhatItIs) {
  const std::string file = api.dir().file("plain.txt");
  test::writeTextFile(file, "not a socket\n");
  const std::string qmpPath = api.dir().file("destination.qmp");
  UniqueFd qmp = boundSocket(qmpPath, true);

  expectRefusal(post("/v1/migrations/incoming", {{"qmp", "destination.qmp"}}), 400, "qmp",
                "destination.qmp");
  auto missing = post("/v1/migrations/incoming", {{"unix", api.dir().file("absent.sock")}});
  expectRefusal(missing, 400, "unix", api.dir().file("absent.sock"));
  EXPECT_NE(missing.error().find("No such file"), std::string::npos) << missing.error();
  auto regular = post("/v1/migrations/incoming", {{"qmp", file}});
  expectRefusal(regular, 400, "qmp", file);
  EXPECT_NE(regular.error().find("a regular file, not a socket"), std::string::npos)
      << regular.error();
  auto directory = post("/v1/migrations/incoming", {{"unix", api.dir().path()}});
  expectRefusal(directory, 400, "unix", api.dir().path());
  EXPECT_NE(directory.error().find("a directory"), std::string::npos) << directory.error();

  auto both = post("/v1/migrations/incoming", {{"qmp", qmpPath}, {"unix", qmpPath}});
  expectRefusal(both, 400, "qmp and unix", "exactly one");
  auto neither = post("/v1/migrations/incoming", {{"expires_s", 30}});
  expectRefusal(neither, 400, "qmp or unix", "exactly one");

  expectRefusal(post("/v1/migrations/incoming", {{"qmp", qmpPath}, {"expires_s", 0}}), 400,
                "expires_s", "0");
  expectRefusal(post("/v1/migrations/incoming", {{"qmp", qmpPath}, {"expires_s", 86401}}), 400,
                "expires_s", "86401");
  expectRefusal(post("/v1/migrations/incoming", {{"qmp", qmpPath}, {"expires_s", "60"}}), 400,
                "expires_s", "\"60\"");
  expectRefusal(post("/v1/migrations/incoming", {{"qmp", qmpPath}, {"port", 1}}), 400, "port",
                "unknown field");

  EXPECT_TRUE(transfers->incomingMigrations().list().empty())
      << "a refused registration registered something";
}

TEST_F(MigrationApi, ADestinationIsRegisteredListedAndRemoved) {
  const std::string incomingPath = api.dir().file("destination.incoming");
  UniqueFd incoming = boundSocket(incomingPath, true);
  const std::string qmpPath = api.dir().file("destination.qmp");
  UniqueFd qmp = boundSocket(qmpPath, true);

  auto relayed = post("/v1/migrations/incoming", {{"unix", incomingPath}, {"expires_s", 30}});
  ASSERT_EQ(relayed.status, 201) << relayed.body.dump();
  const std::string relayId = relayed.body.value("tunnel_id", "");
  EXPECT_EQ(relayId.size(), 16u) << relayed.body.dump();
  EXPECT_EQ(relayed.body["expires_s"], 30);
  EXPECT_EQ(relayed.body["port"], *transfers->listeningPort());

  auto handed = post("/v1/migrations/incoming", {{"qmp", qmpPath}});
  ASSERT_EQ(handed.status, 201) << handed.body.dump();
  const std::string handOffId = handed.body.value("tunnel_id", "");
  EXPECT_EQ(handed.body["expires_s"], kDefaultIncomingLifetimeSeconds);
  EXPECT_NE(handOffId, relayId);

  // The receiving endpoint finds them by the ids the replies gave.
  auto relayTunnel = transfer::parseTunnelId(relayId);
  ASSERT_TRUE(relayTunnel) << relayTunnel.error().message();
  auto found = transfers->incomingMigrations().find(*relayTunnel);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->unixSocket, incomingPath);
  EXPECT_TRUE(found->qmpSocket.empty());

  auto listed = call(socket, "GET", "/v1/migrations/incoming");
  ASSERT_EQ(listed.status, 200) << listed.body.dump();
  ASSERT_EQ(listed.body["incoming"].size(), 2u) << listed.body.dump();
  for (const auto& entry : listed.body["incoming"]) {
    if (entry["tunnel_id"] == relayId) {
      EXPECT_EQ(entry["unix"], incomingPath);
      EXPECT_EQ(entry["mode"], "relay");
      EXPECT_FALSE(entry.contains("qmp"));
      EXPECT_GT(entry["expires_in_s"].get<int64_t>(), 25) << entry.dump();
      EXPECT_LE(entry["expires_in_s"].get<int64_t>(), 30) << entry.dump();
    } else {
      EXPECT_EQ(entry["tunnel_id"], handOffId);
      EXPECT_EQ(entry["qmp"], qmpPath);
      EXPECT_EQ(entry["mode"], "hand-off");
    }
  }

  auto removed = call(socket, "DELETE", "/v1/migrations/incoming/" + relayId);
  EXPECT_EQ(removed.status, 200) << removed.body.dump();
  EXPECT_FALSE(transfers->incomingMigrations().find(*relayTunnel));
  auto again = call(socket, "DELETE", "/v1/migrations/incoming/" + relayId);
  EXPECT_EQ(again.status, 404) << again.body.dump();
  EXPECT_NE(again.error().find(relayId), std::string::npos) << again.error();
  auto bad = call(socket, "DELETE", "/v1/migrations/incoming/not-hex");
  expectRefusal(bad, 400, "", "not-hex");
  listed = call(socket, "GET", "/v1/migrations/incoming");
  ASSERT_EQ(listed.body["incoming"].size(), 1u) << listed.body.dump();
  EXPECT_EQ(listed.body["incoming"][0]["tunnel_id"], handOffId);
}

// The entry GET /v1/migrations lists for `id`; null when none.
nlohmann::json listedMigration(const std::string& socket, uint64_t id) {
  auto listed = call(socket, "GET", "/v1/migrations");
  EXPECT_EQ(listed.status, 200) << listed.body.dump();
  for (const auto& entry : listed.body.value("migrations", nlohmann::json::array())) {
    if (entry.value("id", uint64_t(0)) == id) return entry;
  }
  return nullptr;
}

TEST_F(MigrationApi, AMissingSourceQemuIs502NamingItsSocketAndListedAsFailed) {
  // No socket at all: refused at once, and the reply says why.
  const std::string absent = api.dir().file("absent.qmp");
  auto started = std::chrono::steady_clock::now();
  auto missing = post("/v1/migrations",
                      {{"qmp", absent}, {"peer", "127.0.0.1:7477"}, {"downtime_limit_ms", 50}});
  EXPECT_EQ(missing.status, 502) << missing.body.dump();
  EXPECT_NE(missing.error().find(absent), std::string::npos) << missing.error();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);

  // The request is listed, failed, with the reply's reason.
  auto listed = call(socket, "GET", "/v1/migrations");
  ASSERT_EQ(listed.status, 200);
  ASSERT_EQ(listed.body["migrations"].size(), 1u) << listed.body.dump();
  const auto& entry = listed.body["migrations"][0];
  EXPECT_EQ(entry["state"], "failed") << entry.dump();
  EXPECT_EQ(entry["qmp"], absent) << entry.dump();
  EXPECT_EQ(entry["downtime_limit_ms"], 50) << entry.dump();
  EXPECT_EQ(entry.value("error", ""), missing.error()) << entry.dump();
  EXPECT_EQ(entry.value("start_failure", ""), "qemu_unreachable") << entry.dump();
  EXPECT_EQ(transfers->migrations().inFlight(), 0u);
  // It is over: cancelling it is refused as finished.
  auto cancel = call(socket, "DELETE", "/v1/migrations/" + entry["id"].dump());
  EXPECT_EQ(cancel.status, 409) << cancel.body.dump();
}

// A request without downtime_limit_ms gets the host's default as it is when
// the request comes ([transfer] downtime_limit_ms, set again on a reload),
// and one with its own keeps it. Failed starts are listed with what QEMU
// would have been given, which is enough to see it without a QEMU.
TEST_F(MigrationApi, TheHostDowntimeLimitAppliesWhereTheRequestNamesNone) {
  const std::string absent = api.dir().file("absent.qmp");
  const nlohmann::json plain{{"qmp", absent}, {"peer", "127.0.0.1:7477"}};
  nlohmann::json own = plain;
  own["downtime_limit_ms"] = 50;
  auto limitOf = [&](const nlohmann::json& body) -> nlohmann::json {
    auto reply = post("/v1/migrations", body);
    EXPECT_EQ(reply.status, 502) << reply.body.dump();
    auto listed = call(socket, "GET", "/v1/migrations");
    EXPECT_EQ(listed.status, 200) << listed.body.dump();
    if (!listed.body.contains("migrations") || listed.body["migrations"].empty()) return nullptr;
    // Ids grow, so the newest migration is listed last.
    return listed.body["migrations"].back()["downtime_limit_ms"];
  };

  // Out of the box QEMU's own stays.
  EXPECT_EQ(limitOf(plain), 0);
  transfers->setMigrationDowntimeLimit(120);
  EXPECT_EQ(limitOf(plain), 120);
  EXPECT_EQ(limitOf(own), 50);
  transfers->setMigrationDowntimeLimit(0);
  EXPECT_EQ(limitOf(plain), 0);
  EXPECT_EQ(limitOf(own), 50);
}

// The API drops replies past 1.5 s, so a start waits 0.5 s for its outcome
// before it answers 202.
class MigrationApiShortDeadline : public testing::Test {
 protected:
  static constexpr auto kRequestTimeout = 1500ms;

  // Starts the API with a transfer engine whose QMP replies may take
  // `qmpReplyTimeout` (10 s in the daemon).
  void start(std::chrono::milliseconds qmpReplyTimeout) {
    MigrationTiming timing;
    timing.qmpReplyTimeout = qmpReplyTimeout;
    timing.startReplyWait = startReplyWaitFor(kRequestTimeout);
    auto created = TransferSubsystem::create(TransferSettings{}, timing);
    ASSERT_TRUE(created) << created.error().message();
    sending = std::move(*created);
    api.context().transfers = sending.get();
    api.start();
  }

  test::ApiHarness api{AccessPolicy(std::nullopt, "atoll"), kRequestTimeout};
  std::shared_ptr<TransferSubsystem> sending;
};

TEST_F(MigrationApiShortDeadline, StartsOutlastingTheDeadlineAre202ThenListedAsFailed) {
  // QEMU's replies may take 2 s here, longer than the API allows.
  EXPECT_EQ(startReplyWaitFor(kRequestTimeout), 500ms);
  ASSERT_NO_FATAL_FAILURE(start(2000ms));

  // A QEMU that hung: its QMP socket listens (the kernel accepts the
  // connection) but nothing ever greets or answers. And a socket left
  // behind by a QEMU that is gone: bound, nobody listens; the QMP client
  // retries its refusals for 1 s (QEMU may be between bind and listen),
  // longer than the 0.5 s the API waits for a start.
  const std::string hung = api.dir().file("hung.qmp");
  UniqueFd silent = boundSocket(hung, true);
  const std::string stale = api.dir().file("stale.qmp");
  UniqueFd leftBehind = boundSocket(stale, false);
  std::vector<uint64_t> ids;
  for (const auto& qmp : {hung, stale}) {
    auto asked = std::chrono::steady_clock::now();
    auto reply = call(api.socketPath(), "POST", "/v1/migrations",
                      {{"qmp", qmp}, {"peer", "127.0.0.1:7477"}});
    EXPECT_LT(std::chrono::steady_clock::now() - asked, kRequestTimeout) << qmp;
    ASSERT_EQ(reply.status, 202) << qmp << ": " << reply.body.dump();
    EXPECT_EQ(reply.body["state"], "starting") << reply.body.dump();
    ids.push_back(reply.body.value("id", uint64_t(0)));
    ASSERT_NE(ids.back(), 0u) << reply.body.dump();
    auto entry = listedMigration(api.socketPath(), ids.back());
    ASSERT_TRUE(entry.is_object());
    EXPECT_EQ(entry["state"], "starting") << entry.dump();
    EXPECT_EQ(entry["qmp"], qmp) << entry.dump();
    // A start in progress counts among the host's migrations.
    if (qmp == hung) {
      EXPECT_GE(sending->describe().value("migrating", size_t(0)), 1u);
    }
  }

  // Each start gives up (the hung one after QEMU's reply timeout, the one left
  // behind after the refusals' grace); the record says why.
  const std::string paths[] = {hung, stale};
  for (size_t i = 0; i < ids.size(); ++i) {
    auto entry = listedMigration(api.socketPath(), ids[i]);
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (entry.is_object() && entry["state"] == "starting" &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(100ms);
      entry = listedMigration(api.socketPath(), ids[i]);
    }
    ASSERT_TRUE(entry.is_object());
    EXPECT_EQ(entry["state"], "failed") << entry.dump();
    EXPECT_NE(entry.value("error", "").find(paths[i]), std::string::npos) << entry.dump();
    EXPECT_EQ(entry.value("start_failure", ""), "qemu_unreachable") << entry.dump();
  }
  EXPECT_EQ(sending->migrations().inFlight(), 0u);
  api.stop();
  sending->stop();
}

TEST_F(MigrationApiShortDeadline, StoppingWaitsForAStartAndCancellingOneIsAccepted) {
  ASSERT_NO_FATAL_FAILURE(start(1000ms));
  const std::string hung = api.dir().file("hung.qmp");
  UniqueFd silent = boundSocket(hung, true);
  auto reply =
      call(api.socketPath(), "POST", "/v1/migrations", {{"qmp", hung}, {"peer", "127.0.0.1:7477"}});
  ASSERT_EQ(reply.status, 202) << reply.body.dump();
  const uint64_t id = reply.body.value("id", uint64_t(0));
  auto cancel = call(api.socketPath(), "DELETE", "/v1/migrations/" + std::to_string(id));
  EXPECT_EQ(cancel.status, 200) << cancel.body.dump();
  EXPECT_EQ(cancel.body["state"], "cancelling") << cancel.body.dump();

  // stop() joins the starting job's thread: its start ends within the QMP
  // reply timeout, and the job is over afterwards.
  auto stopping = std::chrono::steady_clock::now();
  sending->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - stopping, 3s);
  auto entry = listedMigration(api.socketPath(), id);
  ASSERT_TRUE(entry.is_object());
  EXPECT_EQ(entry["state"], "failed") << entry.dump();
  EXPECT_EQ(entry.value("cancel_reason", ""), "cancelled through the API") << entry.dump();
  api.stop();
}

TEST_F(MigrationApi, CancellingAnUnknownMigrationIs404) {
  auto unknown = call(socket, "DELETE", "/v1/migrations/999");
  EXPECT_EQ(unknown.status, 404) << unknown.body.dump();
  EXPECT_NE(unknown.error().find("999"), std::string::npos) << unknown.error();
  expectRefusal(call(socket, "DELETE", "/v1/migrations/x"), 400, "migration number", "'x'");
  expectRefusal(call(socket, "DELETE", "/v1/migrations/0"), 400, "migration number", "'0'");
}

TEST(MigrationApiWithout, AReceivingEndpointIncomingIs503NamingTheSetting) {
  test::ApiHarness api;
  auto sending = TransferSubsystem::create(TransferSettings{});
  ASSERT_TRUE(sending) << sending.error().message();
  api.context().transfers = sending->get();
  api.start();
  const std::string qmpPath = api.dir().file("destination.qmp");
  UniqueFd qmp = boundSocket(qmpPath, true);
  auto reply = call(api.socketPath(), "POST", "/v1/migrations/incoming", {{"qmp", qmpPath}});
  EXPECT_EQ(reply.status, 503) << reply.body.dump();
  EXPECT_NE(reply.error().find("[transfer] listen"), std::string::npos) << reply.error();
  auto listed = call(api.socketPath(), "GET", "/v1/migrations/incoming");
  EXPECT_EQ(listed.status, 200) << listed.body.dump();
  EXPECT_TRUE(listed.body["incoming"].empty());
  EXPECT_TRUE(listed.body["port"].is_null());
  api.stop();
  (*sending)->stop();
}

TEST(MigrationApiWithout, TheTransferEngineEveryMigrationRouteIs503) {
  test::ApiHarness api;
  api.start();
  for (auto [method, path] :
       {std::pair{"GET", "/v1/migrations"}, std::pair{"POST", "/v1/migrations"},
        std::pair{"DELETE", "/v1/migrations/1"}, std::pair{"GET", "/v1/migrations/incoming"},
        std::pair{"POST", "/v1/migrations/incoming"},
        std::pair{"DELETE", "/v1/migrations/incoming/ab"}}) {
    auto reply = call(api.socketPath(), method, path, nlohmann::json::object());
    EXPECT_EQ(reply.status, 503) << method << " " << path << ": " << reply.body.dump();
    EXPECT_NE(reply.error().find("transfer engine"), std::string::npos) << reply.error();
  }
}

}  // namespace
}  // namespace Atoll
