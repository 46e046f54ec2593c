#include "forecast/Forecaster.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>

namespace Atoll::forecast {
namespace {

constexpr int64_t kSecond = 1'000'000'000;
constexpr int64_t kStep = 300 * kSecond;

std::unique_ptr<Forecaster> make(ForecasterConfig config = {}) {
  auto created = Forecaster::create(config);
  EXPECT_TRUE(created) << created.error().message();
  return std::move(created.value());
}

void push(Forecaster& f, uint32_t workload, int64_t ts, double value, Metric metric = Metric::Cpu) {
  ASSERT_TRUE(f.ring(0).tryPush(Sample{SeriesKey{workload, metric}, ts, value}));
}

TEST(Forecaster, ResamplesSecondsOntoSteps) {
  auto f = make();
  // Two steps of 1-s samples: 10 then 30.
  for (int64_t s = 0; s < 600; ++s) push(*f, 1, s * kSecond + 1, s < 300 ? 10.0 : 30.0);
  f->tick(599 * kSecond);  // first step complete, second open
  auto snapshot = std::make_unique<ProfileSnapshot>();
  ASSERT_TRUE(f->readProfile({1, Metric::Cpu}, *snapshot));
  EXPECT_EQ(snapshot->originStepNs, 0);
  EXPECT_NEAR(snapshot->p50[0], 10.0, 1e-4);
  f->tick(2 * kStep);
  ASSERT_TRUE(f->readProfile({1, Metric::Cpu}, *snapshot));
  EXPECT_EQ(snapshot->originStepNs, kStep);
  EXPECT_EQ(snapshot->steps, 72u);
  EXPECT_TRUE(snapshotIntact(*snapshot));
  ShortTermSnapshot shortTerm;
  ASSERT_TRUE(f->readShortTerm({1, Metric::Cpu}, shortTerm));
  EXPECT_NEAR(shortTerm.p50, 30.0, 1e-6);
  EXPECT_FALSE(f->readProfile({2, Metric::Cpu}, *snapshot));
}

TEST(Forecaster, DropsAndCountsBadSamplesWithoutPoisoning) {
  auto f = make();
  push(*f, 1, 10 * kSecond, 5.0);
  push(*f, 1, 10 * kSecond, 6.0);                                       // duplicated timestamp
  push(*f, 1, 5 * kSecond, 6.0);                                        // backwards
  push(*f, 1, 11 * kSecond, std::numeric_limits<double>::quiet_NaN());  // NaN
  push(*f, 1, 12 * kSecond, std::numeric_limits<double>::infinity());
  push(*f, 1, 13 * kSecond, -1.0);  // negative demand
  f->tick(kStep);
  push(*f, 1, 100 * kSecond, 5.0);  // step 0 was closed: late
  f->tick(kStep + 1);
  const ForecasterCounters c = f->counters();
  EXPECT_EQ(c.consumed, 7u);
  EXPECT_EQ(c.droppedBadTimestamp, 2u);
  EXPECT_EQ(c.droppedInvalidValue, 3u);
  EXPECT_EQ(c.droppedLate, 1u);
  auto snapshot = std::make_unique<ProfileSnapshot>();
  ASSERT_TRUE(f->readProfile({1, Metric::Cpu}, *snapshot));
  EXPECT_NEAR(snapshot->p50[0], 5.0, 1e-5);
}

// Finite doubles no resource reaches: beyond the models' float state (1e39)
// or a counter wrap read as a rate (1e20). Either would leave the series'
// profile wrong for good.
TEST(Forecaster, DropsValuesBeyondAnyResourceWithoutPoisoning) {
  auto f = make();
  push(*f, 1, kSecond, 5.0);
  push(*f, 1, 2 * kSecond, 1e39);
  push(*f, 2, kSecond, 5.0);
  push(*f, 2, 2 * kSecond, 1e20);
  for (int step = 1; step <= 40; ++step) {
    push(*f, 1, step * kStep + 1, 5.0);
    push(*f, 2, step * kStep + 1, 5.0);
    f->tick((step + 1) * kStep);
  }
  EXPECT_EQ(f->counters().droppedInvalidValue, 2u);
  auto snapshot = std::make_unique<ProfileSnapshot>();
  for (uint32_t workload : {1u, 2u}) {
    ASSERT_TRUE(f->readProfile({workload, Metric::Cpu}, *snapshot));
    f->tick(41 * kStep + 1);  // serves the read's refresh
    ASSERT_TRUE(f->readProfile({workload, Metric::Cpu}, *snapshot));
    EXPECT_NEAR(snapshot->p50[0], 5.0, 1e-4) << "workload " << workload;
    EXPECT_NEAR(snapshot->p95[0], 5.0, 1e-4) << "workload " << workload;
    ShortTermSnapshot shortTerm;
    ASSERT_TRUE(f->readShortTerm({workload, Metric::Cpu}, shortTerm));
    EXPECT_NEAR(shortTerm.p95, 5.0, 1e-4) << "workload " << workload;
  }
}

TEST(Forecaster, BridgesShortGapsAndRestartsAfterLongOnes) {
  ForecasterConfig config;
  config.maxGapSteps = 3;
  auto f = make(config);
  push(*f, 1, 1, 10.0);
  push(*f, 1, 3 * kStep + 1, 10.0);  // steps 1-2 missing: bridged
  f->tick(4 * kStep);
  EXPECT_EQ(f->counters().seriesRestarted, 0u);
  push(*f, 1, 20 * kStep + 1, 50.0);  // 16 steps missing: restart
  f->tick(21 * kStep);
  EXPECT_EQ(f->counters().seriesRestarted, 1u);
  auto snapshot = std::make_unique<ProfileSnapshot>();
  ASSERT_TRUE(f->readProfile({1, Metric::Cpu}, *snapshot));
  EXPECT_NEAR(snapshot->p50[0], 50.0, 1e-5) << "old level forgotten";
}

TEST(Forecaster, IslandAggregatesMembersAndScoresContention) {
  auto f = make();
  auto island = f->defineIsland({"web", {{1, Metric::Cpu}, {2, Metric::Cpu}}, 100.0});
  ASSERT_TRUE(island);
  auto tight = f->defineIsland({"tight", {{1, Metric::Cpu}, {2, Metric::Cpu}}, 55.0});
  ASSERT_TRUE(tight);
  for (int step = 0; step < 200; ++step) {
    push(*f, 1, step * kStep + 1, 20.0 + (step % 3));
    push(*f, 2, step * kStep + 2, 30.0 + (step % 5));
    f->tick((step + 1) * kStep);
  }
  auto snapshot = std::make_unique<ProfileSnapshot>();
  ASSERT_TRUE(f->readIsland(island.value(), *snapshot));
  EXPECT_NEAR(snapshot->p50[0], 53.0, 5.0);
  EXPECT_LT(snapshot->contentionProbability, 0.01);
  EXPECT_EQ(snapshot->firstRiskStep, -1);
  ASSERT_TRUE(f->readIsland(tight.value(), *snapshot));
  EXPECT_GT(snapshot->contentionProbability, 0.05);
  EXPECT_GE(snapshot->firstRiskStep, 1);
  EXPECT_FALSE(f->readIsland(99, *snapshot));
  EXPECT_FALSE(f->defineIsland({"empty", {}, 10.0}));
  EXPECT_FALSE(f->defineIsland({"nocap", {{1, Metric::Cpu}}, 0.0}));
}

TEST(Forecaster, RedefinedIslandFollowsItsNewMembers) {
  auto f = make();
  auto web = f->defineIsland({"web", {{1, Metric::Cpu}, {2, Metric::Cpu}}, 100.0});
  auto db = f->defineIsland({"db", {{3, Metric::Cpu}}, 100.0});
  ASSERT_TRUE(web);
  ASSERT_TRUE(db);
  auto run = [&](int from, int to) {
    for (int step = from; step < to; ++step) {
      push(*f, 1, step * kStep + 1, 20.0);
      push(*f, 2, step * kStep + 2, 30.0);
      push(*f, 3, step * kStep + 3, 10.0);
      f->tick((step + 1) * kStep);
    }
  };
  run(0, 100);
  auto snapshot = std::make_unique<ProfileSnapshot>();
  ASSERT_TRUE(f->readIsland(web.value(), *snapshot));
  EXPECT_NEAR(snapshot->p50[0], 50.0, 1.0);
  // VM 2 moves from web to db; a refused redefinition changes nothing.
  EXPECT_FALSE(f->redefineIsland(web.value(), {"web", {}, 100.0}));
  EXPECT_FALSE(f->redefineIsland(web.value(), {"web", {{1, Metric::Cpu}}, 0.0}));
  EXPECT_FALSE(f->redefineIsland(7, {"none", {{1, Metric::Cpu}}, 10.0}));
  ASSERT_TRUE(f->redefineIsland(web.value(), {"web", {{1, Metric::Cpu}}, 60.0}));
  ASSERT_TRUE(f->redefineIsland(db.value(), {"db", {{2, Metric::Cpu}, {3, Metric::Cpu}}, 100.0}));
  run(100, 130);
  ASSERT_TRUE(f->readIsland(web.value(), *snapshot));
  EXPECT_NEAR(snapshot->p50[0], 20.0, 2.0);
  EXPECT_EQ(snapshot->capacity, 60.0);
  ASSERT_TRUE(f->readIsland(db.value(), *snapshot));
  EXPECT_NEAR(snapshot->p50[0], 40.0, 2.0);
}

// A membership change restarts the aggregate (its history summed another
// set); a resize keeps it. Released islands are withdrawn from readers and
// their slots reused by the next definition, so slots in use never exceed
// the islands defined at once; the new island gets a new id, which a reader
// of the old one cannot mistake for its own.
TEST(Forecaster, RestartedIslandsStartAfreshAndReleasedSlotsAreReusedUnderNewIds) {
  ForecasterConfig config;
  config.maxIslands = 2;
  auto f = make(config);
  auto web = f->defineIsland({"web", {{1, Metric::Cpu}, {2, Metric::Cpu}}, 100.0});
  auto db = f->defineIsland({"db", {{3, Metric::Cpu}}, 100.0});
  ASSERT_TRUE(web);
  ASSERT_TRUE(db);
  EXPECT_EQ(f->islandsInUse(), 2u);
  int step = 0;
  auto run = [&](int steps) {
    for (int end = step + steps; step < end; ++step) {
      push(*f, 1, step * kStep + 1, 20.0);
      push(*f, 2, step * kStep + 2, 30.0);
      push(*f, 3, step * kStep + 3, 10.0);
      f->tick((step + 1) * kStep);
    }
  };
  run(50);
  auto snapshot = std::make_unique<ProfileSnapshot>();
  ASSERT_TRUE(f->readIsland(web.value(), *snapshot));
  const uint32_t scoredBefore = snapshot->accuracy[0].errors;
  EXPECT_GT(scoredBefore, 40u);

  ASSERT_TRUE(f->redefineIsland(web.value(), {"web", {{1, Metric::Cpu}, {2, Metric::Cpu}}, 80.0},
                                IslandHistory::Keep));
  run(1);
  ASSERT_TRUE(f->readIsland(web.value(), *snapshot));
  EXPECT_EQ(snapshot->accuracy[0].errors, scoredBefore + 1) << "a resize keeps the model";

  ASSERT_TRUE(f->redefineIsland(web.value(), {"web", {{1, Metric::Cpu}, {3, Metric::Cpu}}, 80.0},
                                IslandHistory::Restart));
  EXPECT_FALSE(f->readIsland(web.value(), *snapshot)) << "the old set's profile is withdrawn";
  run(3);
  ASSERT_TRUE(f->readIsland(web.value(), *snapshot));
  EXPECT_LE(snapshot->accuracy[0].errors, 3u) << "new members start a fresh model";
  EXPECT_NEAR(snapshot->p50[0], 30.0, 1.0);

  // Full: a third island only once one is released, and then in its slot,
  // under a new id.
  EXPECT_FALSE(f->defineIsland({"batch", {{2, Metric::Cpu}}, 100.0}));
  EXPECT_TRUE(f->releaseIsland(db.value()));
  EXPECT_FALSE(f->releaseIsland(db.value()));
  EXPECT_FALSE(f->releaseIsland(9));
  EXPECT_EQ(f->islandsInUse(), 1u);
  EXPECT_FALSE(f->readIsland(db.value(), *snapshot)) << "a released island has no profile";
  EXPECT_FALSE(f->redefineIsland(db.value(), {"db", {{3, Metric::Cpu}}, 100.0}));
  run(2);
  EXPECT_FALSE(f->readIsland(db.value(), *snapshot)) << "a released island is not forecast";
  auto batch = f->defineIsland({"batch", {{2, Metric::Cpu}}, 100.0});
  ASSERT_TRUE(batch);
  EXPECT_NE(batch.value(), db.value());
  EXPECT_EQ(batch.value() % config.maxIslands, db.value() % config.maxIslands);
  EXPECT_EQ(f->islandsInUse(), 2u);
  EXPECT_FALSE(f->readIsland(batch.value(), *snapshot)) << "nothing published for it yet";
  run(3);
  ASSERT_TRUE(f->readIsland(batch.value(), *snapshot));
  EXPECT_EQ(snapshot->key, batch.value());
  EXPECT_NEAR(snapshot->p50[0], 30.0, 1.0);
  EXPECT_LE(snapshot->accuracy[0].errors, 3u) << "the reused slot starts a fresh model";
  // A reader still holding the released island's id sees none, not batch's.
  EXPECT_FALSE(f->readIsland(db.value(), *snapshot));
  EXPECT_FALSE(f->releaseIsland(db.value()));
  EXPECT_FALSE(f->redefineIsland(db.value(), {"db", {{3, Metric::Cpu}}, 100.0}));
  ASSERT_TRUE(f->readIsland(batch.value(), *snapshot)) << "batch is left alone";
}

// What the daemon's history takes every tick: every series of one metric,
// from the forecaster thread's own state, with no publication asked for.
TEST(Forecaster, ShortTermsNowHandsOutEverySeriesOfAMetricWithoutPublishing) {
  ForecasterConfig config;
  config.unreadShortTermTicks = 5;
  config.watchTicks = 0;  // a read asks for one refresh
  auto f = make(config);
  std::vector<ShortTermForecast> out;
  f->shortTermsNow(Metric::Cpu, out);
  EXPECT_TRUE(out.empty());
  // Workload 9 is only an island member: a series without samples.
  ASSERT_TRUE(f->defineIsland({"web", {{1, Metric::Cpu}, {9, Metric::Cpu}}, 10.0}));
  ShortTermSnapshot published;
  for (int second = 1; second <= 4; ++second) {
    push(*f, 1, second * kSecond, 10.0 * second);
    push(*f, 2, second * kSecond, 1.0);
    push(*f, 1, second * kSecond, 500.0, Metric::Memory);
    f->tick(second * kSecond + 1);
    f->shortTermsNow(Metric::Cpu, out);
    ASSERT_EQ(out.size(), 2u) << "second " << second;
    std::sort(out.begin(), out.end(),
              [](const auto& a, const auto& b) { return a.workload < b.workload; });
    EXPECT_EQ(out[0].workload, 1u);
    EXPECT_EQ(out[0].lastSampleNs, second * kSecond);
    EXPECT_GE(out[0].p95, out[0].p50);
    EXPECT_EQ(out[1].workload, 2u);
    EXPECT_NEAR(out[1].p50, 1.0, 1e-9);
    if (second == 1) {
      // The first publication and the hand-out agree.
      ASSERT_TRUE(f->readShortTerm({1, Metric::Cpu}, published));
      EXPECT_EQ(published.p50, out[0].p50);
      EXPECT_EQ(published.p95, out[0].p95);
    }
  }
  EXPECT_GT(out[0].p50, 10.0) << "the level follows the samples";
  // The read at second 1 asked for one refresh (second 2); the hand-outs
  // asked for nothing, so seconds 3 and 4 were not published (cadence 5).
  ASSERT_TRUE(f->readShortTerm({1, Metric::Cpu}, published));
  EXPECT_EQ(published.lastSampleNs, 2 * kSecond);
  f->shortTermsNow(Metric::Memory, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_NEAR(out[0].p50, 500.0, 1e-9);
}

TEST(Forecaster, VmPressureNamesTheStarvedResource) {
  auto f = make();
  for (int step = 0; step < 50; ++step) {
    push(*f, 7, step * kStep + 1, 1.0, Metric::Cpu);
    push(*f, 7, step * kStep + 2, 900.0 + (step % 4) * 10, Metric::Memory);
    f->tick((step + 1) * kStep);
  }
  auto pressure = f->readVmPressure(7, {4.0, 920.0, 0, 0});
  ASSERT_TRUE(pressure);
  EXPECT_EQ(pressure->driver, Metric::Memory);
  EXPECT_GT(pressure->probability, 0.1);
  EXPECT_FALSE(f->readVmPressure(8, {4.0, 920.0, 0, 0}));
}

TEST(Forecaster, RejectsBadConfiguration) {
  ForecasterConfig config;
  config.stepNs = 0;
  EXPECT_FALSE(Forecaster::create(config));
  config = {};
  config.profileSteps = 1000;
  EXPECT_FALSE(Forecaster::create(config));
  config = {};
  config.model.trackedHorizons = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  EXPECT_FALSE(Forecaster::create(config));
}

TEST(Forecaster, UnreadProfilesArePublishedLazilyAndReadsRefreshThem) {
  ForecasterConfig config;
  config.unreadPublishSteps = 6;
  config.watchSteps = 3;
  auto f = make(config);
  auto snapshot = std::make_unique<ProfileSnapshot>();
  auto stepAndTick = [&](int step) {
    push(*f, 1, step * kStep + 1, 10.0 + step);
    f->tick((step + 1) * kStep);
  };
  stepAndTick(0);  // the first profile is always published
  EXPECT_EQ(f->counters().ticks, 1u);
  // Nobody reads: steps 1-5 are not published, step 6 is (the cadence).
  for (int step = 1; step <= 7; ++step) stepAndTick(step);
  ASSERT_TRUE(f->readProfile({1, Metric::Cpu}, *snapshot));
  EXPECT_EQ(snapshot->originStepNs, 6 * kStep) << "published every 6 steps while unread";
  // The read asked for a refresh: the next tick publishes the current step
  // even without a new one, and the watched series is published each step.
  f->tick(8 * kStep + 1);
  ASSERT_TRUE(f->readProfile({1, Metric::Cpu}, *snapshot));
  EXPECT_EQ(snapshot->originStepNs, 7 * kStep);
  EXPECT_TRUE(snapshotIntact(*snapshot));
  for (int step = 8; step <= 10; ++step) {
    stepAndTick(step);
    ASSERT_TRUE(f->readProfile({1, Metric::Cpu}, *snapshot));
    EXPECT_EQ(snapshot->originStepNs, step * kStep) << "watched series published each step";
  }
  ForecasterConfig bad;
  bad.unreadPublishSteps = 0;
  EXPECT_FALSE(Forecaster::create(bad));
}

TEST(Forecaster, UnreadShortTermsArePublishedLazilyAndReadsRefreshThem) {
  ForecasterConfig config;
  config.unreadShortTermTicks = 5;
  config.watchTicks = 2;
  auto f = make(config);
  ShortTermSnapshot shortTerm;
  auto sampleAt = [](int second) { return second * kSecond + 1; };
  auto secondAndTick = [&](int second) {
    push(*f, 1, sampleAt(second), 10.0 + second);
    f->tick(second * kSecond + 2);
  };
  secondAndTick(1);  // the first short term is always published
  for (int second = 2; second <= 4; ++second) secondAndTick(second);
  ASSERT_TRUE(f->readShortTerm({1, Metric::Cpu}, shortTerm));
  EXPECT_EQ(shortTerm.lastSampleNs, sampleAt(1)) << "unread: not republished before tick 6";
  EXPECT_TRUE(snapshotIntact(shortTerm));
  // The read asked for a refresh; read on every tick, it is published on
  // every tick.
  for (int second = 5; second <= 6; ++second) {
    secondAndTick(second);
    ASSERT_TRUE(f->readShortTerm({1, Metric::Cpu}, shortTerm));
    EXPECT_EQ(shortTerm.lastSampleNs, sampleAt(second)) << "watched short term, second " << second;
  }
  // Unread again: each tick up to watchTicks after the last request (ticks
  // 7-9), then every 5 ticks (14, 19).
  for (int second = 7; second <= 20; ++second) secondAndTick(second);
  ASSERT_TRUE(f->readShortTerm({1, Metric::Cpu}, shortTerm));
  EXPECT_EQ(shortTerm.lastSampleNs, sampleAt(19));
  ForecasterConfig bad;
  bad.unreadShortTermTicks = 0;
  EXPECT_FALSE(Forecaster::create(bad));
  bad = {};
  bad.watchTicks = -1;
  EXPECT_FALSE(Forecaster::create(bad));
}

TEST(Forecaster, ShortTermsNowKeepsSeriesOrderWhenAMemberJoinsLate) {
  auto f = make();
  // Workload 5's series is created as an island member (slot 0) before any
  // sample; workloads 6 and 7 get theirs first.
  ASSERT_TRUE(f->defineIsland({"web", {{5, Metric::Cpu}}, 10.0}));
  std::vector<ShortTermForecast> out;
  for (int second = 1; second <= 3; ++second) {
    push(*f, 6, second * kSecond, 1.0 * second);
    push(*f, 7, second * kSecond, 2.0 * second);
    if (second >= 2) push(*f, 5, second * kSecond, 3.0 * second);
    f->tick(second * kSecond + 1);
    f->shortTermsNow(Metric::Cpu, out);
    std::vector<uint32_t> workloads;
    for (const auto& forecast : out) workloads.push_back(forecast.workload);
    if (second == 1)
      EXPECT_EQ(workloads, (std::vector<uint32_t>{6, 7}));
    else
      EXPECT_EQ(workloads, (std::vector<uint32_t>{5, 6, 7})) << "series order, second " << second;
  }
  // Each entry is that series' own short term as of the last sample.
  for (const auto& forecast : out) {
    EXPECT_EQ(forecast.lastSampleNs, 3 * kSecond);
    ShortTermSnapshot published;
    ASSERT_TRUE(f->readShortTerm({forecast.workload, Metric::Cpu}, published));
    EXPECT_GE(forecast.p95, forecast.p50);
  }
  EXPECT_NEAR(out[0].p50, 3.0 * 2 + 0.3 * (9.0 - 6.0), 1e-9);
}

TEST(Forecaster, AStepTheClockCompletedClosesOnTheTickOfItsFirstSample) {
  ForecasterConfig config;
  config.unreadShortTermTicks = 1000;  // nothing else due on the later ticks
  auto f = make(config);
  const int64_t now = 3 * kStep + kSecond;  // steps 0-2 are completed
  push(*f, 1, kSecond, 10.0);
  f->tick(now);
  // A producer running a step behind: its sample for step 1 arrives after
  // the clock completed that step, so the step closes on this tick ...
  push(*f, 1, kStep + kSecond, 20.0);
  f->tick(now + kSecond);
  // ... and a further sample for it is late.
  push(*f, 1, kStep + 2 * kSecond, 30.0);
  f->tick(now + 2 * kSecond);
  EXPECT_EQ(f->counters().droppedLate, 1u);
  EXPECT_EQ(f->counters().consumed, 3u);
}

TEST(Forecaster, AReadOfASeriesWithNothingNewIsServedByItsNextSample) {
  ForecasterConfig config;
  config.unreadShortTermTicks = 100;
  config.watchTicks = 0;
  auto f = make(config);
  push(*f, 1, kSecond, 10.0);
  f->tick(kSecond + 1);  // the first short term is always published
  ShortTermSnapshot shortTerm;
  ASSERT_TRUE(f->readShortTerm({1, Metric::Cpu}, shortTerm));
  EXPECT_EQ(shortTerm.lastSampleNs, kSecond);
  // The request waits through ticks without samples for the series ...
  f->tick(2 * kSecond + 1);
  f->tick(3 * kSecond + 1);
  push(*f, 1, 4 * kSecond, 12.0);
  f->tick(4 * kSecond + 1);
  // ... and its next sample is published at once, not at tick 101.
  ASSERT_TRUE(f->readShortTerm({1, Metric::Cpu}, shortTerm));
  EXPECT_EQ(shortTerm.lastSampleNs, 4 * kSecond);
  EXPECT_EQ(shortTerm.tick, 4u);
}

TEST(Forecaster, MemoryPerSeriesIsReported) {
  auto f = make();
  EXPECT_GT(f->bytesPerSeries(), 4096u);
  EXPECT_LT(f->bytesPerSeries(), 16384u);
}

}  // namespace
}  // namespace Atoll::forecast
