// Calls to libvirt with a deadline: answers within it pass through, a call
// that hangs is reported once its deadline passes and blocks no later call
// behind it, and the connection is made (and made again) on the pinner's
// own thread. The last test points libvirt's real client at a socket that
// never answers, as a hung libvirtd does.
#include "numa/BoundedVmPinner.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <thread>

#include "numa/LibvirtPinner.h"
#include "tests/SilentLibvirtd.h"
#include "tests/ThreadGate.h"
#include "tests/numa/islands/InMemoryVmPinner.h"

namespace Atoll::numa {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// An in-memory pinner whose vCPU pins wait at a gate first.
class GatedPinner final : public VmPinner {
 public:
  GatedPinner(std::shared_ptr<testing::InMemoryVmPinner> inner,
              std::shared_ptr<test::ThreadGate> gate)
      : inner_(std::move(inner)), gate_(std::move(gate)) {}
  Result<std::vector<std::string>> runningDomains() const override {
    return inner_->runningDomains();
  }
  Result<std::optional<std::string>> metadata(const std::string& domain,
                                              const std::string& uri) const override {
    return inner_->metadata(domain, uri);
  }
  Result<DomainPinning> pinning(const std::string& domain) const override {
    return inner_->pinning(domain);
  }
  Result<void> pinVcpu(const std::string& domain, unsigned vcpu, const CpuList& cpus) override {
    gate_->wait();
    return inner_->pinVcpu(domain, vcpu, cpus);
  }
  Result<void> pinEmulator(const std::string& domain, const CpuList& cpus) override {
    return inner_->pinEmulator(domain, cpus);
  }
  Result<void> pinIothread(const std::string& domain, unsigned id, const CpuList& cpus) override {
    return inner_->pinIothread(domain, id, cpus);
  }
  Result<void> setMemoryNodes(const std::string& domain, const CpuList& nodes) override {
    return inner_->setMemoryNodes(domain, nodes);
  }

 private:
  std::shared_ptr<testing::InMemoryVmPinner> inner_;
  std::shared_ptr<test::ThreadGate> gate_;
};

std::shared_ptr<testing::InMemoryVmPinner> hostWithDb() {
  auto host = std::make_shared<testing::InMemoryVmPinner>(4, 1);
  host->addDomain("db", 2, 0);
  return host;
}

TEST(BoundedVmPinner, AnswersWithinTheDeadlinePassThrough) {
  auto host = hostWithDb();
  auto gate = std::make_shared<test::ThreadGate>();
  gate->release();
  auto connects = std::make_shared<std::atomic<int>>(0);
  BoundedVmPinner pinner(
      [host, gate, connects]() -> Result<std::unique_ptr<VmPinner>> {
        ++*connects;
        return std::unique_ptr<VmPinner>(std::make_unique<GatedPinner>(host, gate));
      },
      5s, "libvirt");
  auto domains = pinner.runningDomains();
  ASSERT_TRUE(domains) << domains.error().message();
  EXPECT_EQ(*domains, std::vector<std::string>{"db"});
  ASSERT_TRUE(pinner.pinVcpu("db", 1, {2, 3}));
  EXPECT_EQ(host->state("db").vcpus[1], (CpuList{2, 3}));
  auto unknown = pinner.pinning("web");
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message().find("web"), std::string::npos);
  EXPECT_EQ(connects->load(), 1);
}

TEST(BoundedVmPinner, AFailedConnectionIsMadeAgainAtTheNextCall) {
  auto host = hostWithDb();
  auto attempts = std::make_shared<std::atomic<int>>(0);
  BoundedVmPinner pinner(
      [host, attempts]() -> Result<std::unique_ptr<VmPinner>> {
        if (++*attempts == 1)
          return Error::invalid("virConnectOpen", "qemu:///system", "", "no libvirtd");
        return std::unique_ptr<VmPinner>(
            std::make_unique<GatedPinner>(host, std::make_shared<test::ThreadGate>()));
      },
      5s, "libvirt");
  auto first = pinner.connect();
  ASSERT_FALSE(first);
  EXPECT_NE(first.error().message().find("no libvirtd"), std::string::npos);
  EXPECT_TRUE(pinner.connect());
  EXPECT_TRUE(pinner.pinning("db"));
  EXPECT_EQ(attempts->load(), 2);
}

// A pinner on a connection the manager has closed: every call fails, as
// libvirt's client fails on a libvirtd that restarted.
class ClosedPinner final : public VmPinner {
 public:
  Result<std::vector<std::string>> runningDomains() const override { return closed(); }
  Result<std::optional<std::string>> metadata(const std::string&,
                                              const std::string&) const override {
    return closed();
  }
  Result<DomainPinning> pinning(const std::string&) const override { return closed(); }
  Result<void> pinVcpu(const std::string&, unsigned, const CpuList&) override { return closed(); }
  Result<void> pinEmulator(const std::string&, const CpuList&) override { return closed(); }
  Result<void> pinIothread(const std::string&, unsigned, const CpuList&) override {
    return closed();
  }
  Result<void> setMemoryNodes(const std::string&, const CpuList&) override { return closed(); }
  bool connected() const override { return false; }

 private:
  static Error closed() {
    return Error::invalid("virConnectListAllDomains", "qemu:///system", "",
                          "internal error: client socket is closed");
  }
};

TEST(BoundedVmPinner, AConnectionTheManagerClosedIsMadeAgainAndTheCallRepeated) {
  auto host = hostWithDb();
  auto connects = std::make_shared<std::atomic<int>>(0);
  BoundedVmPinner pinner(
      [host, connects]() -> Result<std::unique_ptr<VmPinner>> {
        if (++*connects == 1) return std::unique_ptr<VmPinner>(std::make_unique<ClosedPinner>());
        return std::unique_ptr<VmPinner>(
            std::make_unique<GatedPinner>(host, std::make_shared<test::ThreadGate>()));
      },
      5s, "libvirt");
  auto domains = pinner.runningDomains();
  ASSERT_TRUE(domains) << domains.error().message();
  EXPECT_EQ(*domains, std::vector<std::string>{"db"});
  EXPECT_EQ(connects->load(), 2);
  EXPECT_TRUE(pinner.pinning("db"));
  EXPECT_EQ(connects->load(), 2);
}

TEST(BoundedVmPinner, ACallPastItsDeadlineHoldsNoOtherCallAndMayLandLate) {
  auto host = hostWithDb();
  auto gate = std::make_shared<test::ThreadGate>();
  BoundedVmPinner pinner(
      [host, gate]() -> Result<std::unique_ptr<VmPinner>> {
        return std::unique_ptr<VmPinner>(std::make_unique<GatedPinner>(host, gate));
      },
      100ms, "libvirt");
  auto started = Clock::now();
  auto late = pinner.pinVcpu("db", 0, {1});
  EXPECT_GE(Clock::now() - started, 100ms);
  ASSERT_FALSE(late);
  EXPECT_NE(late.error().message().find("has not answered within 0.1 s"), std::string::npos)
      << late.error().message();
  EXPECT_NE(late.error().message().find("db"), std::string::npos) << late.error().message();

  // Libvirt still holds that call: the next one is refused and names it,
  // rather than queued behind it (and timed out on its own deadline).
  auto refused = pinner.pinning("db");
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("has not answered pin vCPU 0 of 'db'"),
            std::string::npos)
      << refused.error().message();

  // Libvirt answers: the late pin took effect, and calls go through again.
  gate->release();
  Result<DomainPinning> pinning = refused;
  for (int i = 0; i < 500 && !pinning; ++i) {
    std::this_thread::sleep_for(10ms);
    pinning = pinner.pinning("db");
  }
  ASSERT_TRUE(pinning) << pinning.error().message();
  EXPECT_EQ(pinning->vcpus[0], CpuList{1});
}

TEST(BoundedVmPinner, DestroyedWhileACallHangsDoesNotWaitForIt) {
  auto host = hostWithDb();
  auto gate = std::make_shared<test::ThreadGate>();
  const auto started = Clock::now();
  {
    BoundedVmPinner pinner(
        [host, gate]() -> Result<std::unique_ptr<VmPinner>> {
          return std::unique_ptr<VmPinner>(std::make_unique<GatedPinner>(host, gate));
        },
        20ms, "libvirt");
    EXPECT_FALSE(pinner.pinVcpu("db", 0, {1}));
  }
  EXPECT_LT(Clock::now() - started, 5s);
  gate->release();
}

TEST(BoundedVmPinner, AHungLibvirtdHoldsACallOnlyUntilTheDeadline) {
  test::SilentLibvirtd libvirtd("pinner");
  ASSERT_TRUE(libvirtd.bound()) << std::strerror(errno);
  const std::string uri = libvirtd.uri();
  BoundedVmPinner pinner(
      [uri]() -> Result<std::unique_ptr<VmPinner>> {
        auto connected = LibvirtPinner::connect(uri);
        if (!connected) return connected.error();
        return std::unique_ptr<VmPinner>(std::move(*connected));
      },
      200ms, "libvirt");
  // Before, the call waited in libvirt's client for as long as the daemon
  // stayed silent: here, for ever.
  for (int call = 0; call < 2; ++call) {
    const auto started = Clock::now();
    auto connected = pinner.connect();
    EXPECT_LT(Clock::now() - started, 5s);
    ASSERT_FALSE(connected);
    EXPECT_NE(connected.error().message().find("has not answered"), std::string::npos)
        << connected.error().message();
  }
  // Once the daemon goes away the client's call ends with an error and the
  // pinner's thread is idle again: destroying the pinner joins it rather
  // than leave it inside libvirt's client as the test ends.
  libvirtd.close();
  Result<void> answered = Error::invalid("connect", uri, "", "not tried");
  for (int i = 0; i < 1000; ++i) {
    answered = pinner.connect();
    if (answered || answered.error().message().find("has not answered") == std::string::npos) break;
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_FALSE(answered);
  EXPECT_EQ(answered.error().message().find("has not answered"), std::string::npos)
      << answered.error().message();
}

}  // namespace
}  // namespace Atoll::numa
