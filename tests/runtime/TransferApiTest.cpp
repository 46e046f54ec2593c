// The daemon's transfer engine over real loopback sockets: transfers
// requested through the local API (POST /v1/transfers) arrive byte for byte,
// the host-wide cap is shared fairly and changes while transfers run, a
// cancel ends a transfer at once, and atolld itself, configured with
// [transfer], serves the same routes.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "migrate/transfer/TransferCpus.h"
#include "runtime/TransferSubsystem.h"
#include "tests/runtime/ApiHarness.h"
#include "tests/runtime/TestSupport.h"

namespace Atoll {
namespace {

using namespace std::chrono_literals;
using test::httpRequest;
using test::rawExchange;

constexpr uint64_t kMiB = 1024 * 1024;

// Random data with a zero stretch in the middle (sent as zero blocks).
void writeImage(const std::string& path, uint64_t bytes, uint64_t seed) {
  std::mt19937_64 random(seed);
  std::vector<uint64_t> words(bytes / 8);
  for (auto& word : words) word = random();
  std::fill(words.begin() + words.size() / 3, words.begin() + words.size() / 2, 0);
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(words.data()), static_cast<std::streamsize>(bytes));
}

std::string fileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return "(missing: " + path + ")";
  std::string bytes(static_cast<size_t>(in.tellg()), '\0');
  in.seekg(0);
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return bytes;
}

struct Reply {
  int status = 0;
  nlohmann::json body;
};

Reply call(const std::string& socket, const std::string& method, const std::string& path,
           const nlohmann::json& body = nullptr) {
  auto response =
      rawExchange(socket, httpRequest(method, path, body.is_null() ? std::string() : body.dump()));
  return {response.status, nlohmann::json::parse(response.body, nullptr, false)};
}

nlohmann::json transferEntry(const std::string& socket, uint64_t id) {
  auto listed = call(socket, "GET", "/v1/transfers");
  for (const auto& t : listed.body.value("transfers", nlohmann::json::array()))
    if (t["id"] == id) return t;
  return nullptr;
}

// Polls until the transfer leaves connecting/running; its last entry.
nlohmann::json waitFinished(const std::string& socket, uint64_t id,
                            std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  nlohmann::json entry;
  while (std::chrono::steady_clock::now() < deadline) {
    entry = transferEntry(socket, id);
    if (entry.is_object() && entry["state"] != "connecting" && entry["state"] != "running")
      return entry;
    std::this_thread::sleep_for(50ms);
  }
  return entry;
}

TransferSettings receiverSettings(const test::TempDir& dir) {
  TransferSettings settings;
  settings.listen = "127.0.0.1:0";
  settings.stagingDirectory = dir.file("staging");
  return settings;
}

class TransferApi : public testing::Test {
 protected:
  void SetUp() override {
    auto receiver = TransferSubsystem::create(receiverSettings(api.dir()));
    ASSERT_TRUE(receiver) << receiver.error().message();
    receiver_ = *receiver;
    peer = "127.0.0.1:" + std::to_string(*receiver_->listeningPort());
    auto sender = TransferSubsystem::create(TransferSettings{});
    ASSERT_TRUE(sender) << sender.error().message();
    sender_ = *sender;
    api.context().transfers = sender_.get();
    api.start();
    socket = api.socketPath();
  }
  void TearDown() override {
    api.stop();
    if (sender_) sender_->stop();
    if (receiver_) receiver_->stop();
  }

  uint64_t post(const nlohmann::json& body) {
    auto reply = call(socket, "POST", "/v1/transfers", body);
    EXPECT_EQ(reply.status, 201) << reply.body.dump();
    return reply.body.value("id", uint64_t(0));
  }

  test::ApiHarness api;
  std::shared_ptr<TransferSubsystem> receiver_, sender_;
  std::string peer, socket;
};

TEST_F(TransferApi, ASentImageArrivesByteForByte) {
  std::string source = api.dir().file("disk.img");
  writeImage(source, 24 * kMiB + 4096 + 512, 7);  // a short last block
  uint64_t id = post({{"file", source}, {"peer", peer}, {"name", "vm1.img"}, {"rounds", 2}});
  ASSERT_GT(id, 0u);
  auto done = waitFinished(socket, id, 30s);
  ASSERT_EQ(done["state"], "done") << done.dump();
  EXPECT_EQ(done["rounds_done"], 2) << done.dump();
  // Round 0 carries every block; the image did not change, so round 1 none.
  EXPECT_EQ(done["bytes"], done["image_bytes"]) << done.dump();
  EXPECT_TRUE(done.contains("image_hash"));
  EXPECT_GT(done["bytes_per_second"].get<double>(), 0);
  EXPECT_TRUE(fileBytes(source) == fileBytes(api.dir().file("staging/vm1.img")))
      << "the staged image differs from the source";
  auto received = receiver_->transfersJson()["received"];
  ASSERT_EQ(received.size(), 1u) << received.dump();
  EXPECT_EQ(received[0]["committed"], true);
}

TEST_F(TransferApi, TheHostCapIsSharedFairlyAndChangesWhileTransfersRun) {
  ASSERT_EQ(call(socket, "PUT", "/v1/transfers/host-bwlimit", {{"bwlimit", "8M"}}).status, 200);
  std::vector<uint64_t> ids;
  for (std::string name : {"a.img", "b.img"}) {
    std::string source = api.dir().file(name);
    writeImage(source, 32 * kMiB, name[0]);
    ids.push_back(post({{"file", source}, {"peer", peer}}));
  }
  // At 8 MiB/s shared by two, each gets 4 MiB/s: 32 MiB would take 8 s.
  auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(1s);
  for (uint64_t id : ids) {
    auto entry = transferEntry(socket, id);
    EXPECT_EQ(entry["state"], "running") << entry.dump();
    EXPECT_EQ(entry.value("rate_limit", uint64_t(0)), 4 * kMiB) << entry.dump();
  }
  auto listed = call(socket, "GET", "/v1/transfers").body;
  EXPECT_EQ(listed["host_bwlimit"], 8 * kMiB);
  EXPECT_EQ(listed["active_transfers"], 2);

  auto lifted = call(socket, "PUT", "/v1/transfers/host-bwlimit", {{"bwlimit", 0}});
  ASSERT_EQ(lifted.status, 200) << lifted.body.dump();
  EXPECT_EQ(lifted.body["before"], 8 * kMiB);
  for (uint64_t id : ids) {
    auto done = waitFinished(socket, id, 20s);
    EXPECT_EQ(done["state"], "done") << done.dump();
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 6.0) << "lifting the cap did not speed the running transfers up";
  EXPECT_TRUE(fileBytes(api.dir().file("a.img")) == fileBytes(api.dir().file("staging/a.img")));
  EXPECT_TRUE(fileBytes(api.dir().file("b.img")) == fileBytes(api.dir().file("staging/b.img")));
}

TEST_F(TransferApi, ACancelEndsATransferHeldBackByALowCap) {
  std::string source = api.dir().file("slow.img");
  writeImage(source, 8 * kMiB, 3);
  uint64_t id = post({{"file", source}, {"peer", peer}, {"bwlimit", "256k"}});
  std::this_thread::sleep_for(300ms);
  auto again = call(socket, "POST", "/v1/transfers", {{"file", source}, {"peer", peer}});
  EXPECT_EQ(again.status, 409) << again.body.dump();

  auto start = std::chrono::steady_clock::now();
  auto cancelled = call(socket, "DELETE", "/v1/transfers/" + std::to_string(id));
  EXPECT_EQ(cancelled.status, 200) << cancelled.body.dump();
  auto entry = waitFinished(socket, id, 5s);
  EXPECT_EQ(entry["state"], "cancelled") << entry.dump();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  EXPECT_FALSE(std::filesystem::exists(api.dir().file("staging/slow.img")))
      << "a cancelled transfer left an image under its final name";
  EXPECT_EQ(call(socket, "DELETE", "/v1/transfers/" + std::to_string(id)).status, 409);
  EXPECT_EQ(call(socket, "DELETE", "/v1/transfers/999").status, 404);
  EXPECT_EQ(call(socket, "DELETE", "/v1/transfers/x").status, 400);
}

TEST_F(TransferApi, BadRequestsAreRefusedNamingTheValue) {
  auto missing = call(socket, "POST", "/v1/transfers",
                      {{"file", api.dir().file("absent.img")}, {"peer", peer}});
  EXPECT_EQ(missing.status, 400);
  EXPECT_NE(missing.body.value("error", "").find("absent.img"), std::string::npos)
      << missing.body.dump();
  auto badPeer = call(socket, "POST", "/v1/transfers", {{"file", "/etc/hostname"}, {"peer", "x"}});
  EXPECT_EQ(badPeer.status, 400);
  EXPECT_NE(badPeer.body.value("error", "").find("\"x\""), std::string::npos) << badPeer.body;
  auto badLimit = call(socket, "PUT", "/v1/transfers/host-bwlimit", {{"bwlimit", "soon"}});
  EXPECT_EQ(badLimit.status, 400);
  EXPECT_EQ(sender_->hostLimit(), 0u) << "a refused change changed the cap";
  // An integer has the same ceiling as a rate given as text.
  for (uint64_t tooHigh : {uint64_t{9'200'000'000'000'000'000ull}, UINT64_MAX}) {
    auto huge = call(socket, "PUT", "/v1/transfers/host-bwlimit", {{"bwlimit", tooHigh}});
    EXPECT_EQ(huge.status, 400) << tooHigh;
    EXPECT_NE(huge.body.value("error", "").find(std::to_string(tooHigh)), std::string::npos)
        << huge.body;
  }
  EXPECT_EQ(sender_->hostLimit(), 0u) << "a refused change changed the cap";
  EXPECT_TRUE(call(socket, "GET", "/v1/transfers").body["transfers"].empty());
}

// With [transfer] cpus, the daemon's sends and receives each run on one of
// those CPUs and say which. The last CPU this process may use, so that an
// engine that ignored the setting (or reported CPU 0 by default) fails.
TEST(TransferApiPlaced, SendsAndReceivesRunOnTheConfiguredCpu) {
  auto allowed = transfer::threadCpus();
  ASSERT_TRUE(allowed && !allowed->empty());
  const unsigned cpu = allowed->back();
  test::ApiHarness api;
  TransferSettings receiving = receiverSettings(api.dir());
  receiving.cpus = {cpu};
  auto receiver = TransferSubsystem::create(receiving);
  ASSERT_TRUE(receiver) << receiver.error().message();
  TransferSettings sending;
  sending.cpus = {cpu};
  auto sender = TransferSubsystem::create(sending);
  ASSERT_TRUE(sender) << sender.error().message();
  api.context().transfers = sender->get();
  api.start();

  std::string source = api.dir().file("disk.img");
  writeImage(source, 8 * kMiB, 3);
  std::string peer = "127.0.0.1:" + std::to_string(*(*receiver)->listeningPort());
  auto reply = call(api.socketPath(), "POST", "/v1/transfers", {{"file", source}, {"peer", peer}});
  ASSERT_EQ(reply.status, 201) << reply.body.dump();
  auto done = waitFinished(api.socketPath(), reply.body.value("id", uint64_t(0)), 30s);
  ASSERT_EQ(done["state"], "done") << done.dump();
  EXPECT_EQ(done["cpu"], cpu) << done.dump();
  auto listed = (*receiver)->transfersJson();
  EXPECT_EQ(listed["cpus"], std::to_string(cpu));
  ASSERT_EQ(listed["received"].size(), 1u) << listed.dump();
  EXPECT_EQ(listed["received"][0]["cpu"], cpu) << listed.dump();
  api.stop();
  (*sender)->stop();
  (*receiver)->stop();
}

TEST(TransferApiWithout, TheEngineTheRoutesSay503) {
  test::ApiHarness api;
  api.start();
  auto reply = call(api.socketPath(), "GET", "/v1/transfers");
  EXPECT_EQ(reply.status, 503);
  EXPECT_NE(reply.body.value("error", "").find("transfer"), std::string::npos);
}

// atolld with [transfer] set: it receives on loopback and sends to itself.
TEST(TransferAtolld, ServesTransfersRequestedThroughItsApi) {
  test::TempDir dir;
  test::writeTextFile(dir.file("atolld.toml"),
                      "[telemetry]\nenabled = false\n[transfer]\nlisten = \"127.0.0.1:0\"\n"
                      "staging_directory = \"" +
                          dir.file("staging") + "\"\nhost_bwlimit = \"64M\"\n");
  std::string failure;
  auto daemon = test::DaemonProcess::start(dir.path(), test::daemonArgsIn(dir, /*withConfig=*/true),
                                           &failure);
  ASSERT_TRUE(daemon) << failure;
  std::string socket = dir.file("atolld.sock");
  auto listed = call(socket, "GET", "/v1/transfers");
  ASSERT_EQ(listed.status, 200) << listed.body.dump() << daemon->log();
  EXPECT_EQ(listed.body["host_bwlimit"], 64 * kMiB);
  int port = listed.body.value("port", 0);
  ASSERT_GT(port, 0) << listed.body.dump();

  std::string source = dir.file("self.img");
  writeImage(source, 8 * kMiB, 11);
  auto posted = call(socket, "POST", "/v1/transfers",
                     {{"file", source}, {"peer", "127.0.0.1:" + std::to_string(port)}});
  ASSERT_EQ(posted.status, 201) << posted.body.dump();
  auto done = waitFinished(socket, posted.body["id"].get<uint64_t>(), 30s);
  EXPECT_EQ(done["state"], "done") << done.dump() << daemon->log();
  EXPECT_TRUE(fileBytes(source) == fileBytes(dir.file("staging/self.img")));
  auto status = call(socket, "GET", "/v1/status").body;
  bool listedSubsystem = false;
  for (const auto& s : status["subsystems"]) listedSubsystem |= s["name"] == "transfer";
  EXPECT_TRUE(listedSubsystem) << status["subsystems"].dump();

  daemon->signal(SIGTERM);
  auto exit = daemon->waitExit(10s);
  ASSERT_TRUE(exit) << "atolld did not drain within 10 s";
  EXPECT_TRUE(WIFEXITED(*exit) && WEXITSTATUS(*exit) == 0) << daemon->log();
}

}  // namespace
}  // namespace Atoll
