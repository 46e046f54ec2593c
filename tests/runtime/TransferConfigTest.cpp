// The daemon's transfer engine without sockets: the [transfer] table, the API
// bodies of /v1/transfers and the rates operators write. Every rejection
// names the value it refused.
#include <gtest/gtest.h>
#include <sched.h>

#include <cctype>

#include "migrate/transfer/QemuMigration.h"
#include "migrate/transfer/Rate.h"
#include "runtime/Config.h"
#include "runtime/TransferSubsystem.h"
#include "tests/runtime/ConfigErrors.h"

namespace Atoll {
namespace {

using test::errorsOf;

TEST(TransferConfig, OffByDefault) {
  auto parsed = parseConfig("", "empty.toml");
  ASSERT_TRUE(parsed.ok()) << errorsOf(parsed);
  EXPECT_TRUE(parsed.config.transfer.listen.empty());
  EXPECT_EQ(parsed.config.transfer.hostBandwidth, 0u);
  EXPECT_EQ(parsed.config.transfer.stagingDirectory, "/var/lib/atoll/staging");
  EXPECT_TRUE(parsed.config.transfer.cpus.empty());
  EXPECT_FALSE(parsed.config.transfer.pipelined);
  EXPECT_EQ(parsed.config.transfer.downtimeLimitMs, 0u);
}

TEST(TransferConfig, ShippedExampleHoldsTheDefaults) {
  auto parsed = loadConfigFile(std::string(ATOLL_SOURCE_DIR) + "/runtime/atolld.example.toml");
  ASSERT_TRUE(parsed.ok()) << errorsOf(parsed);
  EXPECT_EQ(parsed.config.transfer, defaultConfig().transfer);
}

TEST(TransferConfig, ReadsEveryKey) {
  auto parsed = parseConfig(R"(
[transfer]
listen = "[::1]:7477"
staging_directory = "/srv/staging"
tls_certificate = "/etc/atoll/host.pem"
tls_private_key = "/etc/atoll/host.key"
tls_ca = "/etc/atoll/ca.pem"
host_bwlimit = "1.5G"
cpus = "2-3,0,8"
pipelined = true
downtime_limit_ms = 50
)",
                            "t.toml");
  ASSERT_TRUE(parsed.ok()) << errorsOf(parsed);
  const TransferSettings& t = parsed.config.transfer;
  EXPECT_EQ(t.listen, "[::1]:7477");
  EXPECT_EQ(t.stagingDirectory, "/srv/staging");
  EXPECT_EQ(t.tlsCertificate, "/etc/atoll/host.pem");
  EXPECT_EQ(t.tlsPrivateKey, "/etc/atoll/host.key");
  EXPECT_EQ(t.tlsCa, "/etc/atoll/ca.pem");
  EXPECT_EQ(t.hostBandwidth, uint64_t(1536) * 1024 * 1024);
  EXPECT_EQ(t.cpus, (numa::CpuList{0, 2, 3, 8}));
  EXPECT_TRUE(t.pipelined);
  EXPECT_EQ(t.downtimeLimitMs, 50u);

  auto integer = parseConfig("[transfer]\nhost_bwlimit = 1000000\nlisten = \"off\"\n", "i.toml");
  ASSERT_TRUE(integer.ok()) << errorsOf(integer);
  EXPECT_EQ(integer.config.transfer.hostBandwidth, 1000000u);
  EXPECT_TRUE(integer.config.transfer.listen.empty());
}

// 0 keeps QEMU's own; 1 and QEMU's largest are taken as written.
TEST(TransferConfig, DowntimeLimitTakesZeroAndQemusRange) {
  for (uint64_t limit : {uint64_t(0), uint64_t(1), transfer::kMaxDowntimeLimitMs}) {
    auto parsed =
        parseConfig("[transfer]\ndowntime_limit_ms = " + std::to_string(limit) + "\n", "d.toml");
    ASSERT_TRUE(parsed.ok()) << errorsOf(parsed);
    EXPECT_EQ(parsed.config.transfer.downtimeLimitMs, limit);
  }
}

// The subsystem hands the configured limit to its migrations, and a reload's
// value replaces it for the ones started afterwards.
TEST(TransferConfig, DowntimeLimitReachesTheMigrations) {
  TransferSettings settings;
  settings.downtimeLimitMs = 40;
  auto subsystem = TransferSubsystem::create(settings);
  ASSERT_TRUE(subsystem) << subsystem.error().message();
  EXPECT_EQ((*subsystem)->migrations().defaultDowntimeLimitMs(), 40u);
  EXPECT_EQ((*subsystem)->describe()["migration_downtime_limit_ms"], 40);
  (*subsystem)->setMigrationDowntimeLimit(0);
  EXPECT_EQ((*subsystem)->migrations().defaultDowntimeLimitMs(), 0u);
}

TEST(TransferConfig, EmptyCpusLeaveTransfersUnplaced) {
  auto parsed = parseConfig("[transfer]\ncpus = \"\"\n", "c.toml");
  ASSERT_TRUE(parsed.ok()) << errorsOf(parsed);
  EXPECT_TRUE(parsed.config.transfer.cpus.empty());
  auto subsystem = TransferSubsystem::create(parsed.config.transfer);
  ASSERT_TRUE(subsystem) << subsystem.error().message();
  EXPECT_EQ((*subsystem)->transfersJson()["cpus"], "");
  EXPECT_EQ((*subsystem)->transfersJson()["pipelined"], false);
}

// Parsing never looks at the host; the CPUs the daemon may not run on are
// refused when the transfer subsystem starts, naming the key and the CPU.
TEST(TransferConfig, CpusTheDaemonMayNotUseStopItsStart) {
  cpu_set_t allowed;
  ASSERT_EQ(::sched_getaffinity(0, sizeof allowed, &allowed), 0);
  unsigned usable = 0;
  while (!CPU_ISSET(usable, &allowed)) ++usable;
  TransferSettings settings;
  settings.cpus = {usable};
  auto placed = TransferSubsystem::create(settings);
  ASSERT_TRUE(placed) << placed.error().message();
  EXPECT_EQ((*placed)->transfersJson()["cpus"], std::to_string(usable));

  // Beyond any cpu_set_t, so no host lets a process run there.
  auto parsed = parseConfig("[transfer]\ncpus = \"4000\"\n", "c.toml");
  ASSERT_TRUE(parsed.ok()) << errorsOf(parsed);
  auto refused = TransferSubsystem::create(parsed.config.transfer);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("transfer.cpus"), std::string::npos)
      << refused.error().message();
  EXPECT_NE(refused.error().message().find("4000"), std::string::npos) << refused.error().message();
}

struct BadTransferValue {
  std::string body;
  std::string key;
  std::string mentions;  // the message names the refused value
};

// Names the case in test lists by its TOML line (unique), not by its bytes.
void PrintTo(const BadTransferValue& value, std::ostream* out) {
  for (char c : value.body) *out << (std::isalnum(static_cast<unsigned char>(c)) ? c : '_');
}

class TransferConfigRejects : public testing::TestWithParam<BadTransferValue> {};

TEST_P(TransferConfigRejects, NamingTheValue) {
  const auto& c = GetParam();
  auto parsed = parseConfig("[transfer]\n" + c.body + "\n", "bad.toml");
  ASSERT_EQ(parsed.errors.size(), 1u) << errorsOf(parsed);
  EXPECT_EQ(parsed.errors[0].key, c.key);
  EXPECT_NE(parsed.errors[0].message.find(c.mentions), std::string::npos)
      << parsed.errors[0].format();
  EXPECT_EQ(parsed.errors[0].line, c.key == "transfer" ? 1 : 2) << parsed.errors[0].format();
}

INSTANTIATE_TEST_SUITE_P(
    Values, TransferConfigRejects,
    testing::Values(
        BadTransferValue{"listen = \"somewhere\"", "transfer.listen", "'somewhere'"},
        BadTransferValue{"listen = \"1.2.3.4:99999\"", "transfer.listen", "65535"},
        BadTransferValue{"listen = 7477", "transfer.listen", "expected a string"},
        BadTransferValue{"staging_directory = \"staging\"", "transfer.staging_directory",
                         "'staging'"},
        BadTransferValue{"staging_directory = \"/\"", "transfer.staging_directory", "'/'"},
        BadTransferValue{"tls_ca = \"ca.pem\"", "transfer.tls_ca", "'ca.pem'"},
        BadTransferValue{"host_bwlimit = \"fast\"", "transfer.host_bwlimit", "'fast'"},
        BadTransferValue{"host_bwlimit = \"10X\"", "transfer.host_bwlimit", "'10X'"},
        BadTransferValue{"host_bwlimit = -5", "transfer.host_bwlimit", "-5"},
        BadTransferValue{"host_bwlimit = 1.5", "transfer.host_bwlimit", "found float"},
        BadTransferValue{"listen_port = 7477", "transfer.listen_port", "known keys"},
        BadTransferValue{"cpus = \"0-x\"", "transfer.cpus", "'0-x'"},
        BadTransferValue{"cpus = \"3-1\"", "transfer.cpus", "'3-1'"},
        BadTransferValue{"cpus = \"all\"", "transfer.cpus", "'all'"},
        BadTransferValue{"cpus = 4", "transfer.cpus", "expected a string"},
        BadTransferValue{"pipelined = \"yes\"", "transfer.pipelined", "expected a boolean"},
        BadTransferValue{"downtime_limit_ms = -5", "transfer.downtime_limit_ms", "-5"},
        BadTransferValue{"downtime_limit_ms = 2000001", "transfer.downtime_limit_ms",
                         "2000001 is out of range 0..2000000"},
        BadTransferValue{"downtime_limit_ms = \"50\"", "transfer.downtime_limit_ms",
                         "expected an integer, found string"},
        BadTransferValue{"downtime_limit_ms = 50.5", "transfer.downtime_limit_ms",
                         "expected an integer, found float"},
        BadTransferValue{"tls_certificate = \"/c.pem\"\ntls_private_key = \"/k.pem\"", "transfer",
                         "go together"}));

TEST(TransferConfig, EndpointAndTlsNeedARestartTheHostCapDoesNot) {
  DaemonConfig running = defaultConfig();
  DaemonConfig next = running;
  next.transfer.hostBandwidth = 5 << 20;
  EXPECT_TRUE(restartOnlyChanges(running, next).empty());
  // Each migration reads the default downtime limit when it starts.
  next.transfer.downtimeLimitMs = 50;
  EXPECT_TRUE(restartOnlyChanges(running, next).empty());
  next.transfer.listen = "0.0.0.0:7477";
  EXPECT_EQ(restartOnlyChanges(running, next), std::vector<std::string>{"transfer"});
  // The daemon's sends and receives share the CPU set it started with.
  DaemonConfig placed = running;
  placed.transfer.cpus = {0, 1};
  EXPECT_EQ(restartOnlyChanges(running, placed), std::vector<std::string>{"transfer"});
  DaemonConfig pipelined = running;
  pipelined.transfer.pipelined = true;
  EXPECT_EQ(restartOnlyChanges(running, pipelined), std::vector<std::string>{"transfer"});
}

TEST(TransferRequestBody, ReadsEveryField) {
  auto request = parseTransferRequest(
      R"({"file": "/var/lib/images/vm1.qcow2", "peer": "10.0.0.2:7477", "name": "vm1.img",
          "bwlimit": "100M", "rounds": 4, "downtime_ms": 150})");
  ASSERT_TRUE(request) << request.error().message();
  EXPECT_EQ(request->file, "/var/lib/images/vm1.qcow2");
  EXPECT_EQ(request->peer.text(), "10.0.0.2:7477");
  EXPECT_EQ(request->name, "vm1.img");
  EXPECT_EQ(request->bandwidth, 100u << 20);
  EXPECT_EQ(request->rounds, 4u);
  EXPECT_EQ(request->downtimeBudget, std::chrono::milliseconds(150));

  auto minimal =
      parseTransferRequest(R"({"file": "/img/disk.raw", "peer": "[::1]:9", "bwlimit": 0})");
  ASSERT_TRUE(minimal) << minimal.error().message();
  EXPECT_EQ(minimal->name, "disk.raw");  // the file's own name at the peer
  EXPECT_EQ(minimal->rounds, 1u);
  EXPECT_EQ(minimal->bandwidth, 0u);
}

TEST(TransferRequestBody, RefusesNamingTheValue) {
  struct Case {
    std::string body;
    std::string mentions;
  };
  const std::vector<Case> cases = {
      {"", "JSON object"},
      {"[1]", "JSON object"},
      {R"({"peer": "h:1"})", "file"},
      {R"({"file": "/a"})", "peer"},
      {R"({"file": "relative", "peer": "h:1"})", "\"relative\""},
      {R"({"file": "/dir/", "peer": "h:1"})", "\"/dir/\""},
      {R"({"file": 7, "peer": "h:1"})", "expected a string"},
      {R"({"file": "/a", "peer": "nohost"})", "\"nohost\""},
      {R"({"file": "/a", "peer": "h:70000"})", "65535"},
      {R"({"file": "/a", "peer": "h:1", "rounds": 0})", "rounds"},
      {R"({"file": "/a", "peer": "h:1", "rounds": 101})", "1 to 100"},
      {R"({"file": "/a", "peer": "h:1", "rounds": "3"})", "\"3\""},
      {R"({"file": "/a", "peer": "h:1", "bwlimit": "lots"})", "\"lots\""},
      {R"({"file": "/a", "peer": "h:1", "bwlimit": -1})", "-1"},
      {R"({"file": "/a", "peer": "h:1", "downtime_ms": 600001})", "600001"},
      {R"({"file": "/a", "peer": "h:1", "name": "../etc/passwd"})", "../etc/passwd"},
      {R"({"file": "/a", "peer": "h:1", "colour": "blue"})", "colour"},
  };
  for (const auto& c : cases) {
    auto request = parseTransferRequest(c.body);
    ASSERT_FALSE(request) << c.body;
    EXPECT_NE(request.error().message().find(c.mentions), std::string::npos)
        << c.body << " -> " << request.error().message();
  }
}

TEST(TransferRequestBody, HostLimitAndIds) {
  EXPECT_EQ(*parseHostLimitBody(R"({"bwlimit": "2M"})"), 2u << 20);
  EXPECT_EQ(*parseHostLimitBody(R"({"bwlimit": 0})"), 0u);
  for (std::string bad : {"{}", R"({"bwlimit": "x"})", R"({"limit": 5})", "5", ""}) {
    EXPECT_FALSE(parseHostLimitBody(bad)) << bad;
  }
  EXPECT_EQ(*parseTransferId("17"), 17u);
  for (std::string bad : {"0", "", "1x", "-3", "host-bwlimit"}) {
    auto id = parseTransferId(bad);
    ASSERT_FALSE(id) << bad;
    if (!bad.empty()) {
      EXPECT_NE(id.error().message().find("'" + bad + "'"), std::string::npos);
    }
  }
}

TEST(TransferRate, ParsesAndFormats) {
  EXPECT_EQ(*transfer::parseRate("0", "x"), 0u);
  EXPECT_EQ(*transfer::parseRate("500k", "x"), 500u * 1024);
  EXPECT_EQ(*transfer::parseRate("1G", "x"), 1u << 30);
  // A cap under one byte per second would truncate to 0, which means none.
  for (std::string bad : {"", "k", "1T", "-1", "nan", "1e30", "0.5", "1e-9"}) {
    auto rate = transfer::parseRate(bad, "--bwlimit");
    ASSERT_FALSE(rate) << bad;
    EXPECT_NE(rate.error().message().find("--bwlimit"), std::string::npos);
  }
  EXPECT_EQ(transfer::formatRate(0), "0 (none)");
  EXPECT_EQ(transfer::formatRate(100u << 20), "100.0 MiB/s");
}

}  // namespace
}  // namespace Atoll
