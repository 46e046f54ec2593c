// In the test VM: `atoll bench isolation --json` runs the noisy neighbour
// and the latency probe without and with cgroup v2 cpuset islands and
// reports both rows. The figures are printed for bench/RESULTS.md; this
// test checks the report's shape, not speed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>

#include "numa/CgroupV2.h"
#include "util/Fs.h"

namespace Atoll::numa {
namespace {

TEST(IsolationBenchVmTest, ReportsProbeLatencyWithoutAndWithCgroupIslands) {
  const char* cli = std::getenv("ATOLL_CLI");
  if (cli == nullptr) GTEST_SKIP() << "ATOLL_CLI is not set (the test VM sets it)";
  auto root = CgroupV2::open("/sys/fs/cgroup");
  auto enabled = root ? root->enabledControllers() : Result<std::vector<std::string>>(root.error());
  if (!enabled || std::find(enabled->begin(), enabled->end(), "cpuset") == enabled->end())
    GTEST_SKIP() << "cpuset is not enabled in /sys/fs/cgroup";
  const std::string command =
      std::string(cli) + " bench isolation --json --duration-ms 1500 --interval-us 1000";
  FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[4096];
  for (std::size_t got; (got = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;)
    output.append(buffer, got);
  const int status = ::pclose(pipe);
  std::cout << command << "\n" << output;
  ASSERT_EQ(status, 0) << output;
  auto report = nlohmann::json::parse(output, nullptr, false);
  ASSERT_FALSE(report.is_discarded()) << output;
  EXPECT_EQ(report["placement"], "cgroup-cpuset");
  ASSERT_EQ(report["rows"].size(), 2u);
  EXPECT_EQ(report["rows"][0]["scenario"], "without islands");
  EXPECT_EQ(report["rows"][1]["scenario"], "with islands");
  for (const auto& row : report["rows"]) {
    EXPECT_GT(row["samples"].get<unsigned>(), 10u) << row.dump();
    EXPECT_GE(row["p99_us"].get<double>(), row["p50_us"].get<double>()) << row.dump();
  }
  EXPECT_NE(report["rows"][1]["probe_cpus"], "");
  // The benchmark's own islands are gone again.
  EXPECT_FALSE(Dir::open("/sys/fs/cgroup/atoll-bench.slice"));
}

}  // namespace
}  // namespace Atoll::numa
