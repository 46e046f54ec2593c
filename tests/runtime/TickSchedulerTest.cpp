#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "runtime/TickScheduler.h"

namespace Atoll {
namespace {

using namespace std::chrono_literals;

// Records the order in which phases run across subsystems.
class Journaling {
 public:
  void note(std::string entry) {
    std::lock_guard lock(mutex_);
    entries_.push_back(std::move(entry));
  }
  std::vector<std::string> entries() {
    std::lock_guard lock(mutex_);
    return entries_;
  }

 private:
  std::mutex mutex_;
  std::vector<std::string> entries_;
};

// A subsystem whose phases take a set time (or fail), noting each run.
class TimedSubsystem : public Subsystem {
 public:
  TimedSubsystem(std::string name, std::vector<Phase> phases, Journaling& order)
      : name_(std::move(name)), phases_(std::move(phases)), order_(order) {}

  std::string_view name() const override { return name_; }
  bool runsIn(Phase phase) const override {
    return std::find(phases_.begin(), phases_.end(), phase) != phases_.end();
  }
  Result<void> runPhase(Phase phase, const TickContext& context) override {
    order_.note(name_ + ":" + std::string(phaseName(phase)));
    lastDeadlineSlack = context.deadline - std::chrono::steady_clock::now();
    if (phase == slowPhase) std::this_thread::sleep_for(slowFor.load());
    if (throwIn == phase) throw std::runtime_error("boom");
    if (failIn == phase) return Error::invalid("read", "/x", "", "fixture failure");
    return ok();
  }

  std::atomic<std::chrono::milliseconds> slowFor{0ms};
  Phase slowPhase = Phase::Collect;
  std::optional<Phase> failIn;
  std::optional<Phase> throwIn;
  std::chrono::steady_clock::duration lastDeadlineSlack{};

 private:
  std::string name_;
  std::vector<Phase> phases_;
  Journaling& order_;
};

TEST(TickScheduler, RunsPhasesInOrderAcrossSubsystems) {
  Journaling order;
  TickScheduler scheduler;
  scheduler.add(
      std::make_shared<TimedSubsystem>("a", std::vector<Phase>{Phase::Collect, Phase::Act}, order),
      50ms);
  scheduler.add(std::make_shared<TimedSubsystem>(
                    "b", std::vector<Phase>{Phase::Collect, Phase::Forecast, Phase::Plan}, order),
                50ms);
  TickReport report = scheduler.runTick(1, 1000ms);
  EXPECT_EQ(order.entries(),
            (std::vector<std::string>{"a:collect", "b:collect", "b:forecast", "b:plan", "a:act"}));
  ASSERT_EQ(report.subsystems.size(), 2u);
  EXPECT_FALSE(report.anyOverrun());
  EXPECT_EQ(report.subsystems[0].phases.size(), 2u);
  EXPECT_EQ(report.subsystems[1].phases.size(), 3u);
  for (const auto& s : scheduler.status()) {
    EXPECT_EQ(s.state, "idle");
    EXPECT_EQ(s.ticks, 1u);
  }
}

TEST(TickScheduler, AnOverrunIsReportedAndDoesNotHoldUpTheOthers) {
  Journaling order;
  TickScheduler scheduler;
  auto slow = std::make_shared<TimedSubsystem>("slow", std::vector<Phase>{Phase::Collect}, order);
  slow->slowFor = 400ms;
  auto fast = std::make_shared<TimedSubsystem>(
      "fast", std::vector<Phase>{Phase::Collect, Phase::Act}, order);
  scheduler.add(slow, 30ms);
  scheduler.add(fast, 30ms);

  TickReport first = scheduler.runTick(1, 1000ms);
  EXPECT_LT(first.duration, 300ms) << "the tick waited for the slow subsystem";
  EXPECT_TRUE(first.subsystems[0].overran);
  EXPECT_FALSE(first.subsystems[0].phases[0].finished);
  EXPECT_FALSE(first.subsystems[1].overran);
  EXPECT_EQ(first.subsystems[1].phases.size(), 2u);  // fast ran collect and act
  auto states = scheduler.status();
  EXPECT_EQ(states[0].state, "overrun");
  EXPECT_EQ(states[0].overruns, 1u);

  // While the slow phase is still running, the next tick skips it.
  slow->slowFor = 0ms;
  TickReport second = scheduler.runTick(2, 1000ms);
  EXPECT_TRUE(second.subsystems[0].skipped);
  EXPECT_FALSE(second.subsystems[1].skipped);
  EXPECT_EQ(second.subsystems[1].phases.size(), 2u);

  // Once it returned, it runs normally again.
  std::this_thread::sleep_for(450ms);
  TickReport third = scheduler.runTick(3, 1000ms);
  EXPECT_FALSE(third.subsystems[0].skipped);
  EXPECT_FALSE(third.subsystems[0].overran);
  EXPECT_TRUE(third.subsystems[0].phases[0].finished);
  EXPECT_EQ(scheduler.status()[0].state, "idle");
}

TEST(TickScheduler, ThePhaseSeesItsBudgetAsADeadline) {
  Journaling order;
  TickScheduler scheduler;
  auto s = std::make_shared<TimedSubsystem>("s", std::vector<Phase>{Phase::Plan}, order);
  scheduler.add(s, 40ms);
  scheduler.runTick(1, 1000ms);
  EXPECT_GT(s->lastDeadlineSlack, 0ms);
  EXPECT_LE(s->lastDeadlineSlack, 40ms);
  EXPECT_TRUE(scheduler.setBudget("s", 80ms));
  EXPECT_FALSE(scheduler.setBudget("nope", 80ms));
  EXPECT_EQ(scheduler.status()[0].budget, 80ms);
}

TEST(TickScheduler, FailuresAndExceptionsAreReportedPerPhase) {
  Journaling order;
  TickScheduler scheduler;
  auto failing = std::make_shared<TimedSubsystem>(
      "failing", std::vector<Phase>{Phase::Collect, Phase::Act}, order);
  failing->failIn = Phase::Collect;
  failing->throwIn = Phase::Act;
  scheduler.add(failing, 50ms);
  TickReport report = scheduler.runTick(1, 1000ms);
  ASSERT_EQ(report.subsystems[0].phases.size(), 2u);
  EXPECT_NE(report.subsystems[0].phases[0].error.find("fixture failure"), std::string::npos);
  EXPECT_NE(report.subsystems[0].phases[1].error.find("boom"), std::string::npos);
  auto status = scheduler.status()[0];
  EXPECT_EQ(status.state, "failed");
  EXPECT_EQ(status.failures, 2u);
  EXPECT_NE(status.lastError.find("act: exception: boom"), std::string::npos);
}

TEST(TickScheduler, StopReportsSubsystemsStillRunning) {
  Journaling order;
  auto scheduler = std::make_unique<TickScheduler>();
  auto stuck = std::make_shared<TimedSubsystem>("stuck", std::vector<Phase>{Phase::Act}, order);
  stuck->slowPhase = Phase::Act;
  stuck->slowFor = 600ms;
  scheduler->add(stuck, 10ms);
  scheduler->runTick(1, 1000ms);
  auto started = std::chrono::steady_clock::now();
  auto left = scheduler->stop(50ms);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 400ms);
  EXPECT_EQ(left, std::vector<std::string>{"stuck"});
  scheduler.reset();
  std::this_thread::sleep_for(700ms);  // the abandoned worker finishes on its own
}

}  // namespace
}  // namespace Atoll
