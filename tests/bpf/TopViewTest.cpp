#include "bpf/collector/TopView.h"

#include <gtest/gtest.h>

namespace Atoll::telemetry {
namespace {

WorkloadSnapshot row(const std::string& name, std::optional<double> cpu,
                     std::optional<uint64_t> memory = std::nullopt) {
  WorkloadSnapshot s;
  s.workload.cgroup.name = name;
  s.cpuCores = cpu;
  s.memoryBytes = memory;
  return s;
}

TEST(TopView, SortNamesRoundTrip) {
  for (const std::string& name : topSortNames()) {
    TopSort sort{};
    EXPECT_TRUE(parseTopSort(name, sort)) << name;
  }
  TopSort sort{};
  EXPECT_FALSE(parseTopSort("cpu%", sort));
}

TEST(TopView, SortsLargestFirstAndMissingLast) {
  std::vector<WorkloadSnapshot> rows = {row("a", 0.5), row("b", std::nullopt), row("c", 1.5)};
  sortSnapshots(rows, TopSort::Cpu);
  EXPECT_EQ(rows[0].workload.cgroup.name, "c");
  EXPECT_EQ(rows[1].workload.cgroup.name, "a");
  EXPECT_EQ(rows[2].workload.cgroup.name, "b");
  sortSnapshots(rows, TopSort::Name);
  EXPECT_EQ(rows[0].workload.cgroup.name, "a");
  std::vector<WorkloadSnapshot> byMemory = {row("x", 1, 10), row("y", 1, 30)};
  sortSnapshots(byMemory, TopSort::Memory);
  EXPECT_EQ(byMemory[0].workload.cgroup.name, "y");
}

TEST(TopView, JsonUsesNullForMissingValues) {
  auto j = snapshotJson(row("vm1", 0.25));
  EXPECT_DOUBLE_EQ(j["cpu_cores"].get<double>(), 0.25);
  EXPECT_TRUE(j["memory_bytes"].is_null());
  EXPECT_TRUE(j["uuid"].is_null());
  EXPECT_EQ(j["name"], "vm1");
}

TEST(TopView, TableShowsDashForMissing) {
  std::string table = renderTable({row("vm1", 0.25)});
  EXPECT_NE(table.find("vm1"), std::string::npos);
  EXPECT_NE(table.find("25.0"), std::string::npos);
  EXPECT_NE(table.find(" -"), std::string::npos);
}

}  // namespace
}  // namespace Atoll::telemetry
