// Parsing of QEMU's `query-migrate` replies: progress accounting depends on
// it, and the reply is wire data from another process.
#include <gtest/gtest.h>

#include "migrate/qemu/MigrationStatus.h"

namespace Atoll::qemu {
namespace {

TEST(MigrationStatusTest, ParsesActiveMigration) {
  auto reply = nlohmann::json::parse(R"({
    "status": "active", "total-time": 1200, "expected-downtime": 30, "setup-time": 4,
    "ram": {"transferred": 1048576, "remaining": 3145728, "total": 4194304,
            "dirty-sync-count": 2, "mbps": 812.5}})");
  auto status = parseQueryMigrate(reply);
  ASSERT_TRUE(status) << status.error().message();
  EXPECT_EQ(status->status, "active");
  EXPECT_EQ(status->totalTimeMs, 1200u);
  EXPECT_EQ(status->expectedDowntimeMs, 30u);
  EXPECT_EQ(status->ramTransferredBytes, 1048576u);
  EXPECT_EQ(status->ramRemainingBytes, 3145728u);
  EXPECT_EQ(status->dirtySyncCount, 2u);
  EXPECT_DOUBLE_EQ(status->ramMbps, 812.5);
  EXPECT_DOUBLE_EQ(status->progress(), 0.25);
  EXPECT_FALSE(status->finished());
}

TEST(MigrationStatusTest, CompletedCarriesDowntime) {
  auto status = parseQueryMigrate(nlohmann::json::parse(
      R"({"status": "completed", "total-time": 900, "downtime": 41, "ram": {"total": 10}})"));
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->succeeded());
  EXPECT_TRUE(status->finished());
  EXPECT_EQ(status->downtimeMs, 41u);
  EXPECT_DOUBLE_EQ(status->progress(), 1.0);
}

// QEMU's migration thread sets "completed" before it stores the total time
// and downtime: a reply from that moment is not the end of the migration,
// or its figures would be read as 0.
TEST(MigrationStatusTest, CompletedBeforeQemuStoredItsFiguresIsNotFinished) {
  auto status = parseQueryMigrate(nlohmann::json::parse(
      R"({"status": "completed", "total-time": 0, "downtime": 0, "setup-time": 3,
          "ram": {"transferred": 134742016, "remaining": 0, "total": 134750208}})"));
  ASSERT_TRUE(status) << status.error().message();
  EXPECT_EQ(status->status, kCompletingStatus);
  EXPECT_FALSE(status->finished());
  EXPECT_FALSE(status->succeeded());
}

// A QEMU that arrived by migration reports its incoming migration as
// "completed" (and nothing more) while it has no outgoing one.
TEST(MigrationStatusTest, AnArrivedGuestsIncomingMigrationIsNotItsOwn) {
  auto status = parseQueryMigrate(nlohmann::json::parse(R"({"status": "completed"})"));
  ASSERT_TRUE(status) << status.error().message();
  EXPECT_EQ(status->status, "none");
  EXPECT_FALSE(status->finished());
}

TEST(MigrationStatusTest, EmptyReplyMeansNoMigration) {
  auto status = parseQueryMigrate(nlohmann::json::object());
  ASSERT_TRUE(status);
  EXPECT_EQ(status->status, "none");
  EXPECT_FALSE(status->finished());
  EXPECT_DOUBLE_EQ(status->progress(), 0.0);
}

TEST(MigrationStatusTest, FailedKeepsQemusReason) {
  auto status = parseQueryMigrate(
      nlohmann::json::parse(R"({"status": "failed", "error-desc": "Unable to write"})"));
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->finished());
  EXPECT_FALSE(status->succeeded());
  EXPECT_EQ(status->errorDescription, "Unable to write");
}

TEST(MigrationStatusTest, WrongTypesAreErrorsNamingTheField) {
  auto negative = parseQueryMigrate(nlohmann::json::parse(R"({"status": "active",
      "ram": {"transferred": -5}})"));
  ASSERT_FALSE(negative);
  EXPECT_NE(negative.error().message().find("transferred"), std::string::npos);
  auto text = parseQueryMigrate(nlohmann::json::parse(R"({"status": 3})"));
  ASSERT_FALSE(text);
  EXPECT_NE(text.error().message().find("status"), std::string::npos);
  EXPECT_FALSE(parseQueryMigrate(nlohmann::json::array()));
  EXPECT_FALSE(parseQueryMigrate(nlohmann::json::parse(R"({"ram": "lots"})")));
}

}  // namespace
}  // namespace Atoll::qemu
