// The progress line and the summary `atoll transfer migrate` shows, from a
// constructed QEMU report and tunnel figures.
#include <gtest/gtest.h>

#include "migrate/qemu/MigrationReport.h"

namespace Atoll::qemu {
namespace {

MigrationStatus activeStatus() {
  MigrationStatus s;
  s.status = "active";
  s.dirtySyncCount = 3;
  s.ramTransferredBytes = 96ull << 20;
  s.ramRemainingBytes = 32ull << 20;
  s.ramTotalBytes = 128ull << 20;
  s.ramMbps = 268.435456;  // 32 MiB/s
  s.dirtyPagesRate = 1500;
  return s;
}

TEST(MigrationReportTest, ProgressLineShowsQemuFiguresAndTunnelBytes) {
  TunnelFigures tunnel;
  tunnel.bytesToPeer = 100ull << 20;
  std::string line = formatProgressLine(activeStatus(), tunnel);
  EXPECT_EQ(line,
            "active  pass 3  RAM 96.0 MiB sent, 32.0 MiB of 128.0 MiB left  QEMU 268 Mbit/s  "
            "dirty 1500 pages/s  tunnel 100.0 MiB  ETA 1.0 s");
}

TEST(MigrationReportTest, NoEtaBeforeQemuHasARate) {
  MigrationStatus s;
  s.status = "setup";
  EXPECT_LT(s.etaSeconds(), 0);
  std::string line = formatProgressLine(s, TunnelFigures{});
  EXPECT_NE(line.find("ETA -"), std::string::npos) << line;
  EXPECT_EQ(line.rfind("setup", 0), 0u) << line;
}

TEST(MigrationReportTest, SummaryOfACompletedMigration) {
  MigrationStatus s = activeStatus();
  s.status = "completed";
  s.totalTimeMs = 1234;
  s.setupTimeMs = 5;
  s.downtimeMs = 42;
  s.ramTransferredBytes = 130ull << 20;
  TunnelFigures tunnel;
  tunnel.bytesToPeer = 131ull << 20;
  tunnel.connections = 1;
  tunnel.peerAckedMs = 1.5;
  tunnel.localAcceptedMs = 20.4;
  tunnel.firstByteMs = 21;
  tunnel.lastByteMs = 1250;
  tunnel.closedMs = 1300;
  EXPECT_EQ(formatSummary(s, tunnel),
            "migration completed\n"
            "  QEMU: total 1234 ms, setup 5 ms, downtime 42 ms, 3 passes\n"
            "  RAM: 130.0 MiB sent of 128.0 MiB\n"
            "  tunnel: 131.0 MiB to the peer (137363456 bytes) over 1 connection\n"
            "  tunnel timeline: destination reached 1.5 ms, QEMU connected 20.4 ms, first byte "
            "21.0 ms, last byte 1250.0 ms, closed 1300.0 ms\n");

  nlohmann::json json = summaryJson(s, tunnel);
  EXPECT_EQ(json["status"], "completed");
  EXPECT_EQ(json["downtime_ms"], 42u);
  EXPECT_EQ(json["total_time_ms"], 1234u);
  EXPECT_EQ(json["setup_time_ms"], 5u);
  EXPECT_EQ(json["ram_transferred_bytes"], 130ull << 20);
  EXPECT_EQ(json["tunnel"]["bytes_to_peer"], 131ull << 20);
  EXPECT_EQ(json["tunnel"]["connections"], 1u);
  EXPECT_DOUBLE_EQ(json["tunnel"]["timeline_ms"]["first_byte"].get<double>(), 21.0);
  EXPECT_FALSE(json.contains("error"));
}

TEST(MigrationReportTest, HandOffSummaryNamesTheMode) {
  MigrationStatus s = activeStatus();
  s.status = "completed";
  TunnelFigures tunnel;
  tunnel.mode = "hand-off";
  tunnel.bytesToPeer = 2ull << 20;
  tunnel.connections = 1;
  std::string summary = formatSummary(s, tunnel);
  EXPECT_NE(summary.find("  tunnel (hand-off, QEMU to QEMU): 2.0 MiB to the peer (2097152 bytes) "
                         "over 1 connection\n"),
            std::string::npos)
      << summary;
  nlohmann::json json = summaryJson(s, tunnel);
  EXPECT_EQ(json["tunnel"]["mode"], "hand-off");
  EXPECT_EQ(summaryJson(s, TunnelFigures{})["tunnel"]["mode"], "relay");
}

TEST(MigrationReportTest, FailedMigrationCarriesQemusReason) {
  MigrationStatus s;
  s.status = "failed";
  s.errorDescription = "Unable to write to socket: Broken pipe";
  TunnelFigures tunnel;  // QEMU never connected: no timeline line
  std::string summary = formatSummary(s, tunnel);
  EXPECT_EQ(summary.rfind("migration failed: Unable to write to socket: Broken pipe\n", 0), 0u)
      << summary;
  EXPECT_EQ(summary.find("timeline"), std::string::npos) << summary;
  EXPECT_NE(summary.find("over 0 connections"), std::string::npos) << summary;
  nlohmann::json json = summaryJson(s, tunnel);
  EXPECT_EQ(json["error"], "Unable to write to socket: Broken pipe");
  EXPECT_TRUE(json["tunnel"]["timeline_ms"]["qemu_connected"].is_null());
}

TEST(MigrationReportTest, ParsesDirtyRateFromQemu) {
  auto status = parseQueryMigrate(nlohmann::json::parse(
      R"({"status": "active", "ram": {"dirty-pages-rate": 2500, "page-size": 4096,
          "remaining": 1000000, "mbps": 8}})"));
  ASSERT_TRUE(status) << status.error().message();
  EXPECT_EQ(status->dirtyPagesRate, 2500u);
  EXPECT_EQ(status->pageSize, 4096u);
  EXPECT_DOUBLE_EQ(status->etaSeconds(), 1.0);
}

}  // namespace
}  // namespace Atoll::qemu
