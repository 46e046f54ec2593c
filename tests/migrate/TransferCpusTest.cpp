// Placement of transfer sides on CPUs (TransferCpus): which CPU a side gets,
// that its thread and the threads it starts run there, and that the thread
// gets its CPUs back. Needs no root: a thread may narrow its own CPUs.
#include "migrate/transfer/TransferCpus.h"

#include <gtest/gtest.h>
#include <sched.h>

#include <future>
#include <thread>
#include <vector>

namespace Atoll::transfer {
namespace {

numa::CpuList allowedCpus() {
  return threadCpus().value_or({});
}

TEST(TransferCpus, NoCpusPlacesNothing) {
  auto cpus = TransferCpus::create({}, "--cpus");
  ASSERT_TRUE(cpus);
  auto before = allowedCpus();
  auto lease = cpus->place();
  ASSERT_TRUE(lease);
  EXPECT_EQ(lease->cpu(), -1);
  EXPECT_EQ(allowedCpus(), before);
}

TEST(TransferCpus, ACpuTheProcessMayNotUseIsRefusedAndNamed) {
  auto cpus = TransferCpus::create({CPU_SETSIZE + 7u}, "transfer.cpus");
  ASSERT_FALSE(cpus);
  EXPECT_NE(cpus.error().message().find("transfer.cpus"), std::string::npos)
      << cpus.error().message();
  EXPECT_NE(cpus.error().message().find(std::to_string(CPU_SETSIZE + 7)), std::string::npos)
      << cpus.error().message();
}

TEST(TransferCpus, TheSideAndTheThreadsItStartsRunOnItsCpuUntilTheLeaseEnds) {
  auto before = allowedCpus();
  ASSERT_FALSE(before.empty());
  const unsigned cpu = before.back();
  auto cpus = TransferCpus::create({cpu}, "--cpus");
  ASSERT_TRUE(cpus);
  {
    auto lease = cpus->place();
    ASSERT_TRUE(lease) << lease.error().message();
    EXPECT_EQ(lease->cpu(), int(cpu));
    EXPECT_EQ(allowedCpus(), numa::CpuList{cpu});
    auto started = std::async(std::launch::async, [] { return allowedCpus(); });
    EXPECT_EQ(started.get(), numa::CpuList{cpu}) << "a thread started meanwhile";
    EXPECT_EQ(cpus->running(), std::vector<size_t>{1});
  }
  EXPECT_EQ(allowedCpus(), before);
  EXPECT_EQ(cpus->running(), std::vector<size_t>{0});
}

TEST(TransferCpus, ConcurrentSidesSpreadOverTheCpus) {
  auto before = allowedCpus();
  if (before.size() < 2) GTEST_SKIP() << "needs two CPUs this process may run on";
  auto cpus = TransferCpus::create({before[0], before[1]}, "--cpus");
  ASSERT_TRUE(cpus);
  auto first = cpus->place();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->cpu(), int(before[0]));
  // A second side, on another thread, while the first still runs.
  int secondCpu = std::async(std::launch::async, [&] {
                    auto lease = cpus->place();
                    return lease ? lease->cpu() : -2;
                  }).get();
  EXPECT_EQ(secondCpu, int(before[1]));
  // The second has ended and the first still runs: the next side goes to
  // the second CPU again.
  int thirdCpu = std::async(std::launch::async, [&] {
                   auto lease = cpus->place();
                   return lease ? lease->cpu() : -2;
                 }).get();
  EXPECT_EQ(thirdCpu, int(before[1]));
  *first = TransferCpus::Lease{};
  EXPECT_EQ(cpus->running(), (std::vector<size_t>{0, 0}));
  EXPECT_EQ(allowedCpus(), before);
}

}  // namespace
}  // namespace Atoll::transfer
