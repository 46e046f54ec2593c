#include "util/DeadlineWorker.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>

#include "tests/ThreadGate.h"

namespace Atoll {
namespace {

using namespace std::chrono_literals;

uint64_t startedNumber(const std::variant<uint64_t, DeadlineWorker::Busy>& started) {
  EXPECT_TRUE(std::holds_alternative<uint64_t>(started))
      << "refused: busy with " << std::get<DeadlineWorker::Busy>(started).what;
  return std::holds_alternative<uint64_t>(started) ? std::get<uint64_t>(started) : 0;
}

TEST(DeadlineWorker, ACallThatReturnsInTimeIsWaitedForAndItsAnswerSeen) {
  DeadlineWorker worker;
  for (int round = 1; round <= 3; ++round) {
    auto answer = std::make_shared<int>(0);
    const uint64_t call =
        startedNumber(worker.start("answer", [answer, round] { *answer = round; }));
    ASSERT_TRUE(worker.waitFor(call, 10s));
    EXPECT_EQ(*answer, round);
  }
}

TEST(DeadlineWorker, ACallPastItsDeadlineHoldsTheThreadAndLaterCallsAreToldWhich) {
  DeadlineWorker worker;
  auto gate = std::make_shared<test::ThreadGate>();
  auto answered = std::make_shared<std::atomic<bool>>(false);
  const uint64_t hung = startedNumber(worker.start("list domains", [gate, answered] {
    gate->wait();
    answered->store(true);
  }));
  EXPECT_FALSE(worker.waitFor(hung, 50ms));

  auto ranSecond = std::make_shared<std::atomic<bool>>(false);
  auto refused = worker.start("pin vCPU 0", [ranSecond] { ranSecond->store(true); });
  ASSERT_TRUE(std::holds_alternative<DeadlineWorker::Busy>(refused));
  EXPECT_EQ(std::get<DeadlineWorker::Busy>(refused).what, "list domains");
  EXPECT_GE(std::get<DeadlineWorker::Busy>(refused).waited, 50ms);

  gate->release();
  ASSERT_TRUE(worker.waitFor(hung, 10s));
  EXPECT_TRUE(answered->load());
  EXPECT_FALSE(ranSecond->load()) << "a refused call must never run";

  // Free again: the next call is taken.
  const uint64_t next =
      startedNumber(worker.start("pin vCPU 0", [ranSecond] { ranSecond->store(true); }));
  EXPECT_GT(next, hung);
  ASSERT_TRUE(worker.waitFor(next, 10s));
  EXPECT_TRUE(ranSecond->load());
}

TEST(DeadlineWorker, DestroyedWhileACallHangsItReturnsAtOnceAndTheCallFinishesLater) {
  auto gate = std::make_shared<test::ThreadGate>();
  auto finished = std::make_shared<test::ThreadGate>();
  {
    DeadlineWorker worker;
    startedNumber(worker.start("hang", [gate, finished] {
      gate->wait();
      finished->release();
    }));
  }
  // The worker is gone; its thread still holds the call, which completes
  // once released and touches only what it captured.
  gate->release();
  finished->wait();
}

TEST(DeadlineWorker, ACallsCapturesAreReleasedBeforeItCountsAsReturned) {
  DeadlineWorker worker;
  auto probe = std::make_shared<int>(0);
  const uint64_t call = startedNumber(worker.start("probe", [probe] { *probe = 1; }));
  ASSERT_TRUE(worker.waitFor(call, 10s));
  EXPECT_EQ(probe.use_count(), 1);
  EXPECT_EQ(*probe, 1);
}

}  // namespace
}  // namespace Atoll
