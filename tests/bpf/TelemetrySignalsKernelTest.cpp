// The per-signal availability `atoll check` prints, on the real kernel: every
// signal has a line, a missing one says why, and what this kernel offers is
// reported as available.
#include <gtest/gtest.h>
#include <unistd.h>

#include <iostream>

#include "TestCgroup.h"
#include "bpf/collector/TelemetrySignals.h"

namespace Atoll::telemetry {
namespace {

TEST(TelemetrySignals, EverySignalIsListedAndMissingOnesSayWhy) {
  auto access = testing::cgroup2ForTests();
  if (!access.skipReason.empty()) GTEST_SKIP() << access.skipReason;
  auto signals = probeTelemetrySignals(access.mount);
  ASSERT_GE(signals.size(), 10u);
  for (const SignalStatus& s : signals) {
    EXPECT_FALSE(s.signal.empty());
    EXPECT_FALSE(s.source.empty());
    if (!s.available) {
      EXPECT_FALSE(s.reason.empty()) << s.signal;
    }
  }
  auto find = [&](const std::string& name) -> const SignalStatus* {
    for (const SignalStatus& s : signals)
      if (s.signal == name) return &s;
    return nullptr;
  };
  const SignalStatus* runq = find("run-queue latency");
  ASSERT_NE(runq, nullptr);
  if (::access("/sys/kernel/btf/vmlinux", R_OK) == 0) {
    EXPECT_TRUE(runq->available) << runq->reason;
  }
  const SignalStatus* memory = find("resident memory");
  ASSERT_NE(memory, nullptr);
  if (!memory->available) {
    EXPECT_NE(memory->reason.find("memory controller"), std::string::npos);
  }
  std::string text = renderSignals(signals);
  std::cout << text;  // what this host offers, in the test log
  EXPECT_NE(text.find("run-queue latency"), std::string::npos);
  EXPECT_EQ(signalsJson(signals).size(), signals.size());
}

}  // namespace
}  // namespace Atoll::telemetry
