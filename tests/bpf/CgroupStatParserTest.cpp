#include "bpf/collector/CgroupStatParser.h"

#include <gtest/gtest.h>

namespace Atoll::telemetry {
namespace {

TEST(CgroupStatParser, CpuStatOfAV2ChildWithoutCpuController) {
  const char* text =
      "usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\n"
      "core_sched.force_idle_usec 0\n";
  auto stat = parseCpuStat(text, "cpu.stat");
  ASSERT_TRUE(stat) << stat.error().message();
  EXPECT_EQ(stat->usageUsec, 1234567u);
  EXPECT_EQ(stat->userUsec, 1000000u);
  EXPECT_EQ(stat->systemUsec, 234567u);
}

TEST(CgroupStatParser, CpuStatWithThrottlingFields) {
  auto stat = parseCpuStat(
      "usage_usec 5\nuser_usec 3\nsystem_usec 2\nnr_periods 10\nnr_throttled 1\n"
      "throttled_usec 700\nnr_bursts 0\nburst_usec 0\n",
      "cpu.stat");
  ASSERT_TRUE(stat);
  EXPECT_EQ(stat->usageUsec, 5u);
}

TEST(CgroupStatParser, CpuStatWithoutUsageIsAnErrorNamingTheFile) {
  auto stat = parseCpuStat("user_usec 3\n", "/x/cpu.stat");
  ASSERT_FALSE(stat);
  EXPECT_NE(stat.error().message().find("/x/cpu.stat"), std::string::npos);
  EXPECT_NE(stat.error().message().find("usage_usec"), std::string::npos);
}

TEST(CgroupStatParser, GarbledNumberNamesTheLine) {
  auto stat = parseCpuStat("usage_usec 12x4\n", "cpu.stat");
  ASSERT_FALSE(stat);
  EXPECT_EQ(stat.error().value, "usage_usec 12x4");
}

TEST(CgroupStatParser, MemoryStatKeysAndValues) {
  const char* text =
      "anon 1048576\nfile 2097152\nkernel 65536\nshmem 0\n"
      "pgfault 4242\npgmajfault 7\nworkingset_refault_anon 0\n";
  auto values = parseKeyValues(text, "memory.stat");
  ASSERT_TRUE(values) << values.error().message();
  EXPECT_EQ(values->at("anon"), 1048576u);
  EXPECT_EQ(values->at("file"), 2097152u);
  EXPECT_EQ(values->at("pgfault"), 4242u);
  EXPECT_EQ(values->at("pgmajfault"), 7u);
  EXPECT_EQ(values->size(), 7u);
}

TEST(CgroupStatParser, MemoryCurrentSingleValue) {
  auto value = parseSingleValue("8192\n", "memory.current");
  ASSERT_TRUE(value);
  EXPECT_EQ(*value, 8192u);
  EXPECT_FALSE(parseSingleValue("max\n", "memory.current"));
  EXPECT_FALSE(parseSingleValue("", "memory.current"));
}

TEST(CgroupStatParser, PressureSomeAndFull) {
  const char* text =
      "some avg10=1.50 avg60=0.25 avg300=0.00 total=123456\n"
      "full avg10=0.75 avg60=0.10 avg300=0.01 total=6543\n";
  auto pressure = parsePressure(text, "memory.pressure");
  ASSERT_TRUE(pressure) << pressure.error().message();
  EXPECT_DOUBLE_EQ(pressure->some.avg10, 1.50);
  EXPECT_DOUBLE_EQ(pressure->some.avg60, 0.25);
  EXPECT_EQ(pressure->some.totalUsec, 123456u);
  ASSERT_TRUE(pressure->full);
  EXPECT_DOUBLE_EQ(pressure->full->avg300, 0.01);
  EXPECT_EQ(pressure->full->totalUsec, 6543u);
}

TEST(CgroupStatParser, CpuPressureWithoutFullLine) {
  auto pressure = parsePressure("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", "cpu.pressure");
  ASSERT_TRUE(pressure);
  EXPECT_FALSE(pressure->full);
}

TEST(CgroupStatParser, PressureErrors) {
  EXPECT_FALSE(parsePressure("some avg10=x avg60=0 avg300=0 total=0\n", "p"));
  EXPECT_FALSE(parsePressure("some avg10=0.00 avg60=0.00 total=0\n", "p"));
  EXPECT_FALSE(parsePressure("full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", "p"));
  EXPECT_FALSE(parsePressure("most avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", "p"));
}

}  // namespace
}  // namespace Atoll::telemetry
