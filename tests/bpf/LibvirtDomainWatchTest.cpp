// libvirt is asked for its domains off the telemetry tick: a tick waits for
// the answer only up to its deadline, then goes on with the last list. The
// last test points a real libvirt client at a socket that never answers, as
// a hung libvirtd does.
#include "bpf/collector/LibvirtDomainWatch.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <thread>

#include "bpf/collector/Collector.h"
#include "tests/SilentLibvirtd.h"
#include "tests/ThreadGate.h"

namespace Atoll::telemetry {
namespace {

using namespace std::chrono_literals;
using Kind = LibvirtAnswer::Kind;

LibvirtDomain domain(const std::string& name) {
  LibvirtDomain d;
  d.name = name;
  d.uuid = name + "-uuid";
  d.pid = 42;
  d.cgroupPath = "machine.slice/machine-qemu-" + name + ".scope";
  return d;
}

TEST(LibvirtDomainWatch, AListWithinTheDeadlineIsUsed) {
  LibvirtDomainWatch watch(
      [] { return Result<std::vector<LibvirtDomain>>(std::vector{domain("web")}); });
  LibvirtAnswer answer = watch.refresh(5s);
  ASSERT_EQ(answer.kind, Kind::kListed);
  ASSERT_EQ(answer.domains.size(), 1u);
  EXPECT_EQ(answer.domains[0].name, "web");
}

TEST(LibvirtDomainWatch, AnErrorWithinTheDeadlineIsAFailure) {
  LibvirtDomainWatch watch([] {
    return Result<std::vector<LibvirtDomain>>(
        Error::invalid("virConnectOpenReadOnly", "qemu:///system", "", "no libvirtd"));
  });
  LibvirtAnswer answer = watch.refresh(5s);
  ASSERT_EQ(answer.kind, Kind::kFailed);
  ASSERT_TRUE(answer.error);
  EXPECT_NE(answer.error->message().find("no libvirtd"), std::string::npos);
}

TEST(LibvirtDomainWatch, ASlowAnswerLeavesTheLastListAndIsUsedWhenItComes) {
  auto gate = std::make_shared<test::ThreadGate>();
  auto calls = std::make_shared<std::atomic<int>>(0);
  LibvirtDomainWatch watch([gate, calls]() -> Result<std::vector<LibvirtDomain>> {
    if (++*calls == 1) return std::vector{domain("web")};
    gate->wait();
    return std::vector{domain("web"), domain("db")};
  });
  ASSERT_EQ(watch.refresh(5s).kind, Kind::kListed);

  LibvirtAnswer late = watch.refresh(50ms);
  ASSERT_EQ(late.kind, Kind::kLate);
  EXPECT_TRUE(late.hasEarlierList);
  ASSERT_EQ(late.domains.size(), 1u);
  EXPECT_EQ(late.domains[0].name, "web");
  EXPECT_GE(late.waiting, 50ms);

  // Still unanswered: the next discovery does not queue another call behind
  // it, and does not wait again for a libvirtd that already let one
  // deadline pass.
  const auto asked = std::chrono::steady_clock::now();
  EXPECT_EQ(watch.refresh(10s).kind, Kind::kLate);
  EXPECT_LT(std::chrono::steady_clock::now() - asked, 5s);
  EXPECT_EQ(calls->load(), 2);
  gate->release();
  // Answers come again once libvirt does.
  LibvirtAnswer listed;
  for (int i = 0; i < 500 && listed.kind != Kind::kListed; ++i) {
    std::this_thread::sleep_for(10ms);
    listed = watch.refresh(5s);
  }
  ASSERT_EQ(listed.kind, Kind::kListed);
  EXPECT_EQ(listed.domains.size(), 2u);
}

TEST(LibvirtDomainWatch, LateBeforeAnyListGivesNoDomains) {
  auto gate = std::make_shared<test::ThreadGate>();
  LibvirtDomainWatch watch([gate]() -> Result<std::vector<LibvirtDomain>> {
    gate->wait();
    return std::vector{domain("web")};
  });
  LibvirtAnswer answer = watch.refresh(20ms);
  EXPECT_EQ(answer.kind, Kind::kLate);
  EXPECT_FALSE(answer.hasEarlierList);
  EXPECT_TRUE(answer.domains.empty());
  gate->release();
}

TEST(LibvirtDomainWatch, DestroyedWhileLibvirtHasNotAnsweredDoesNotWaitForIt) {
  auto gate = std::make_shared<test::ThreadGate>();
  {
    LibvirtDomainWatch watch([gate]() -> Result<std::vector<LibvirtDomain>> {
      gate->wait();
      return std::vector<LibvirtDomain>{};
    });
    EXPECT_EQ(watch.refresh(10ms).kind, Kind::kLate);
  }  // returns with the lister still blocked
  gate->release();
}

TEST(LibvirtDomainWatch, AHungLibvirtdDoesNotHoldTheCollectorsTick) {
  test::SilentLibvirtd libvirtd("watch");
  ASSERT_TRUE(libvirtd.bound()) << std::strerror(errno);
  const auto mount = std::filesystem::temp_directory_path() /
                     ("atoll-libvirt-watch-mount-" + std::to_string(::getpid()));
  std::filesystem::create_directories(mount);
  CollectorOptions options;
  options.cgroupMount = mount.string();
  options.selectors = {"machine.slice/*"};
  options.libvirtUri = libvirtd.uri();
  options.libvirtTimeout = 200ms;
  options.schedProbe = false;
  options.netProbe = false;
  options.blockProbe = false;
  auto collector = Collector::start(options, nullptr);
  ASSERT_TRUE(collector) << collector.error().message();
  for (int tick = 0; tick < 2; ++tick) {
    // Before, the tick waited in libvirt's client for as long as the
    // daemon stayed silent: here, for ever.
    const auto started = std::chrono::steady_clock::now();
    TickReport report = (*collector)->tick();
    EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
    EXPECT_TRUE(report.problems.empty());
    EXPECT_EQ((*collector)->libvirtState(), "late");
    EXPECT_NE((*collector)->libvirtProblem().find("has not answered"), std::string::npos)
        << (*collector)->libvirtProblem();
  }
  // Once the daemon goes away, its answer (an error) reaches the tick, and
  // the listing thread is idle again: destroying the collector joins it
  // rather than leave it inside libvirt's client as the test ends.
  libvirtd.close();
  for (int i = 0; i < 1000 && (*collector)->libvirtState() == "late"; ++i) {
    std::this_thread::sleep_for(10ms);
    (*collector)->tick();
  }
  EXPECT_NE((*collector)->libvirtState(), "late") << (*collector)->libvirtProblem();
  collector->reset();
  std::filesystem::remove_all(mount);
}

}  // namespace
}  // namespace Atoll::telemetry
