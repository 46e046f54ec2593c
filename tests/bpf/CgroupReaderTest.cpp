// The kept-descriptor reader against a fixture tree (no root): files that
// exist are read, missing ones are absent, re-reads see new contents.
#include "bpf/collector/CgroupReader.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace Atoll::telemetry {
namespace {

class FixtureCgroup : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/atoll-cgroup-fixture-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  void write(const std::string& name, const std::string& text) {
    std::ofstream(root_ + "/" + name) << text;
  }
  std::string root_;
};

TEST_F(FixtureCgroup, ReadsPresentFilesAndSkipsAbsentOnes) {
  write("cpu.stat", "usage_usec 100\nuser_usec 60\nsystem_usec 40\n");
  write("cpu.pressure", "some avg10=2.00 avg60=1.00 avg300=0.50 total=99\n");
  auto dir = Dir::open(root_);
  ASSERT_TRUE(dir);
  auto reader = CgroupReader::open(*dir);
  ASSERT_TRUE(reader) << reader.error().message();
  auto reading = reader->read();
  ASSERT_TRUE(reading) << reading.error().message();
  ASSERT_TRUE(reading->cpu);
  EXPECT_EQ(reading->cpu->usageUsec, 100u);
  ASSERT_TRUE(reading->cpuPressure);
  EXPECT_DOUBLE_EQ(reading->cpuPressure->some.avg10, 2.0);
  EXPECT_FALSE(reading->memoryCurrent);
  EXPECT_FALSE(reading->ioPressure);
  EXPECT_TRUE(reading->memoryStat.empty());
}

TEST_F(FixtureCgroup, KeptDescriptorSeesRewrittenContents) {
  write("cpu.stat", "usage_usec 100\n");
  write("memory.current", "4096\n");
  auto dir = Dir::open(root_);
  ASSERT_TRUE(dir);
  auto reader = CgroupReader::open(*dir);
  ASSERT_TRUE(reader);
  // Rewrite in place (same inode), as the kernel's files behave.
  { std::ofstream(root_ + "/cpu.stat", std::ios::in | std::ios::out) << "usage_usec 900\n"; }
  auto reading = reader->read();
  ASSERT_TRUE(reading);
  EXPECT_EQ(reading->cpu->usageUsec, 900u);
  EXPECT_EQ(*reading->memoryCurrent, 4096u);
}

TEST_F(FixtureCgroup, GarbledFileIsAnErrorWithThePath) {
  write("memory.current", "lots\n");
  auto dir = Dir::open(root_);
  ASSERT_TRUE(dir);
  auto reader = CgroupReader::open(*dir);
  ASSERT_TRUE(reader);
  auto reading = reader->read();
  ASSERT_FALSE(reading);
  EXPECT_NE(reading.error().message().find(root_ + "/memory.current"), std::string::npos);
}

}  // namespace
}  // namespace Atoll::telemetry
