// Several producers, one forecaster thread, several readers, all at once.
// Checks that producers never block (every push is accounted for as consumed
// or dropped), that readers only ever see whole publications (checksums), and
// that what readers see moves forward. Built and run under ThreadSanitizer by
// scripts/test.sh.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "forecast/Forecaster.h"

namespace Atoll::forecast {
namespace {

constexpr int kProducers = 3;
constexpr int kReaders = 3;
constexpr uint32_t kWorkloads = 16;
constexpr int64_t kStepNs = 1'000'000;  // 1 ms model steps keep the run short

TEST(ForecasterConcurrency, ProducersReadersAndTickRunCleanly) {
  ForecasterConfig config;
  config.stepNs = kStepNs;
  config.profileSteps = 24;
  config.model.seasonSteps = 48;
  config.model.trackedHorizons = {1, 6, 24};
  config.model.maxHorizon = 24;
  config.rings = kProducers;
  config.ringCapacity = 256;  // small, so full rings happen and are counted
  config.maxSeries = 64;
  auto created = Forecaster::create(config);
  ASSERT_TRUE(created) << created.error().message();
  Forecaster& forecaster = *created.value();
  std::vector<SeriesKey> members;
  for (uint32_t w = 0; w < kWorkloads; w += 2) members.push_back({w, Metric::Cpu});
  auto island = forecaster.defineIsland({"even", members, 100.0});
  ASSERT_TRUE(island);
  // The island's current id: defined again after a release, it gets a new
  // one, which the readers then take (until they do, they read nothing).
  std::atomic<uint32_t> islandId{island.value()};

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> attempted{0};
  std::atomic<int64_t> clock{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      uint64_t n = 0;
      std::vector<int64_t> lastTs(kWorkloads, 0);
      while (!stop.load(std::memory_order_relaxed)) {
        const uint32_t workload = uint32_t(n % kWorkloads);
        // Each producer owns the workloads w % kProducers == p, so timestamps
        // per series increase.
        if (int(workload % kProducers) == p) {
          const int64_t ts = std::max(lastTs[workload] + 1, clock.load(std::memory_order_relaxed));
          lastTs[workload] = ts;
          forecaster.ring(p).tryPush(
              Sample{SeriesKey{workload, Metric::Cpu}, ts, double((n * 7919) % 100)});
          attempted.fetch_add(1, std::memory_order_relaxed);
        }
        ++n;
      }
    });
  }
  std::atomic<uint64_t> reads{0}, torn{0}, regressions{0};
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&] {
      std::vector<uint64_t> lastTick(kWorkloads + 1, 0);
      auto snapshot = std::make_unique<ProfileSnapshot>();
      ShortTermSnapshot shortTerm;
      uint64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        const uint32_t workload = uint32_t(n++ % (kWorkloads + 1));
        bool got;
        if (workload == kWorkloads) {
          got = forecaster.readIsland(islandId.load(std::memory_order_relaxed), *snapshot);
        } else {
          got = forecaster.readProfile({workload, Metric::Cpu}, *snapshot);
          if (forecaster.readShortTerm({workload, Metric::Cpu}, shortTerm)) {
            if (!snapshotIntact(shortTerm)) torn.fetch_add(1);
          }
        }
        if (!got) continue;
        reads.fetch_add(1, std::memory_order_relaxed);
        if (!snapshotIntact(*snapshot)) torn.fetch_add(1);
        if (snapshot->tick < lastTick[workload]) regressions.fetch_add(1);
        lastTick[workload] = snapshot->tick;
      }
    });
  }
  // The forecaster thread: advance time one step per tick, hand the short
  // terms out after each tick (the daemon's history), and change the
  // island under its readers: new members (the model restarts and its
  // profile is withdrawn until the next publication), or released and
  // defined again (the same slot under a new id).
  std::vector<SeriesKey> odd;
  for (uint32_t w = 1; w < kWorkloads; w += 2) odd.push_back({w, Metric::Cpu});
  uint64_t handedOut = 0, churnFailures = 0;
  int64_t lastStep = 0;
  std::thread ticker([&] {
    std::vector<ShortTermForecast> shortTerms;
    // 400 ticks of churn, then on until the producers and readers have
    // been scheduled at all: on a loaded host the ticks can outrun threads
    // that have not run yet. The bound only stops a run that never could.
    const auto giveUpAt = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    auto everyoneRan = [&] { return reads.load() > 0 && handedOut > 0 && attempted.load() > 0; };
    for (int t = 1; t <= 400 || (!everyoneRan() && std::chrono::steady_clock::now() < giveUpAt);
         ++t) {
      lastStep = t;
      clock.store(t * kStepNs, std::memory_order_relaxed);
      forecaster.tick(t * kStepNs);
      forecaster.shortTermsNow(Metric::Cpu, shortTerms);
      handedOut += shortTerms.size();
      const bool churning = t <= 400;
      if (churning && t % 50 == 25 &&
          !forecaster.redefineIsland(islandId.load(),
                                     {"even", t % 100 == 25 ? odd : members, 100.0},
                                     IslandHistory::Restart))
        ++churnFailures;
      if (churning && t % 100 == 0) {
        const uint32_t released = islandId.load();
        auto again = forecaster.releaseIsland(released)
                         ? forecaster.defineIsland({"even", members, 100.0})
                         : Parsed<uint32_t>(InputError{"even", 0, "", "not released"});
        if (!again || again.value() == released) ++churnFailures;
        if (again) islandId.store(again.value());
      }
      std::this_thread::yield();
    }
    stop.store(true);
  });
  ticker.join();
  for (auto& thread : threads) thread.join();
  forecaster.tick((lastStep + 600) * kStepNs);  // drain what is left

  const ForecasterCounters counters = forecaster.counters();
  EXPECT_EQ(counters.consumed + counters.droppedFullRing, attempted.load());
  EXPECT_EQ(torn.load(), 0u);
  EXPECT_EQ(regressions.load(), 0u);
  EXPECT_GT(reads.load(), 0u);
  EXPECT_GT(handedOut, 0u);
  EXPECT_EQ(churnFailures, 0u);
  EXPECT_EQ(forecaster.islandsInUse(), 1u);
  EXPECT_EQ(counters.droppedInvalidValue, 0u);
  EXPECT_EQ(counters.droppedBadTimestamp, 0u);
  ProfileSnapshot island0;
  ASSERT_TRUE(forecaster.readIsland(islandId.load(), island0));
  EXPECT_TRUE(snapshotIntact(island0));
}

// Producers sharing one ring, some pushing one sample at a time and some in
// batches (one claim of the ring per batch), while the forecaster thread
// drains it. Every sample is consumed or counted as dropped, none is seen
// twice or out of its producer's order (each series' timestamps must arrive
// increasing, else they are counted as bad), and none arrives torn (values
// are checked against their timestamps by the model's input checks: a torn
// cell would carry a negative or non-finite value or a repeated timestamp).
TEST(ForecasterConcurrency, SingleAndBatchPushersShareOneRing) {
  constexpr int kSamplesPerProducer = 20'000;
  ForecasterConfig config;
  config.stepNs = kStepNs;
  config.profileSteps = 12;
  config.model.seasonSteps = 0;
  config.model.trackedHorizons = {1, 12};
  config.model.maxHorizon = 12;
  config.ringCapacity = 64;  // small, so the ring fills and batches are cut short
  config.maxSeries = 64;
  auto created = Forecaster::create(config);
  ASSERT_TRUE(created) << created.error().message();
  Forecaster& forecaster = *created.value();

  std::atomic<int> running{kProducers};
  std::atomic<uint64_t> attempted{0}, accepted{0};
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      // Producer p owns workloads p, p + kProducers, ... (4 each).
      std::vector<Sample> batch;
      int64_t ts = 0;
      for (int n = 0; n < kSamplesPerProducer;) {
        const size_t size = p == 0 ? 1 : size_t(1 + (n % 7));
        batch.clear();
        ++ts;
        for (size_t i = 0; i < size && n < kSamplesPerProducer; ++i, ++n)
          batch.push_back(Sample{SeriesKey{uint32_t(p + kProducers * (i % 4)), Metric::Cpu},
                                 kStepNs + (ts * 8 + int64_t(i / 4)) * 10'000, double(ts % 50)});
        const size_t pushed = size == 1 ? size_t(forecaster.ring(0).tryPush(batch[0]))
                                        : forecaster.ring(0).tryPushBatch(batch);
        attempted.fetch_add(batch.size(), std::memory_order_relaxed);
        accepted.fetch_add(pushed, std::memory_order_relaxed);
      }
      running.fetch_sub(1);
    });
  }
  // Ticks that close no step by time (samples close their own), so no
  // sample is late and each series' order is checked on every sample.
  while (running.load() > 0) {
    forecaster.tick(kStepNs);
    std::this_thread::yield();
  }
  for (auto& producer : producers) producer.join();
  forecaster.tick(1'000'000 * kStepNs);

  const ForecasterCounters counters = forecaster.counters();
  EXPECT_EQ(counters.consumed, accepted.load());
  EXPECT_EQ(counters.consumed + counters.droppedFullRing, attempted.load());
  EXPECT_GT(counters.consumed, 0u);
  EXPECT_EQ(counters.droppedInvalidValue, 0u);
  EXPECT_EQ(counters.droppedBadTimestamp, 0u);
  EXPECT_EQ(counters.droppedLate, 0u);
}

TEST(ForecasterConcurrency, FullRingNeverBlocksProducer) {
  ForecasterConfig config;
  config.ringCapacity = 16;
  auto created = Forecaster::create(config);
  ASSERT_TRUE(created);
  Forecaster& forecaster = *created.value();
  // No consumer at all: every push returns at once; extra ones are counted.
  uint64_t accepted = 0;
  for (int i = 0; i < 1000; ++i)
    accepted += forecaster.ring(0).tryPush(Sample{SeriesKey{1, Metric::Cpu}, i + 1, 1.0});
  EXPECT_EQ(accepted, 16u);
  EXPECT_EQ(forecaster.counters().droppedFullRing, 984u);
  forecaster.tick(1);
  EXPECT_EQ(forecaster.counters().consumed, 16u);
}

}  // namespace
}  // namespace Atoll::forecast
