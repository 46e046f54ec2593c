// Several producers, one forecaster thread, several readers, all at once.
// Checks that producers never block (every push is accounted for as consumed
// or dropped), that readers only ever see whole publications (checksums), and
// that what readers see moves forward. Built and run under ThreadSanitizer by
// scripts/test.sh.
#include <gtest/gtest.h>

#include <atomic>
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
          got = forecaster.readIsland(island.value(), *snapshot);
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
  // The forecaster thread: advance time one step per tick.
  std::thread ticker([&] {
    for (int t = 1; t <= 400; ++t) {
      clock.store(t * kStepNs, std::memory_order_relaxed);
      forecaster.tick(t * kStepNs);
      std::this_thread::yield();
    }
    stop.store(true);
  });
  ticker.join();
  for (auto& thread : threads) thread.join();
  forecaster.tick(1000 * kStepNs);  // drain what is left

  const ForecasterCounters counters = forecaster.counters();
  EXPECT_EQ(counters.consumed + counters.droppedFullRing, attempted.load());
  EXPECT_EQ(torn.load(), 0u);
  EXPECT_EQ(regressions.load(), 0u);
  EXPECT_GT(reads.load(), 0u);
  EXPECT_EQ(counters.droppedInvalidValue, 0u);
  EXPECT_EQ(counters.droppedBadTimestamp, 0u);
  ProfileSnapshot island0;
  ASSERT_TRUE(forecaster.readIsland(island.value(), island0));
  EXPECT_TRUE(snapshotIntact(island0));
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
