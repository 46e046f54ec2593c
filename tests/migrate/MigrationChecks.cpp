#include "MigrationChecks.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "GuestPanicRetry.h"
#include "TestImages.h"
#include "migrate/transfer/Net.h"

namespace Atoll::transfer::testing {

using namespace std::chrono_literals;

uint16_t freeLoopbackPort() {
  auto listener = listenTcp(Endpoint{"127.0.0.1", 0});
  if (!listener) return 0;
  return boundPort(listener->get()).value_or(0);
}

bool guestKernelPanicked(const QemuGuest& guest) {
  std::ifstream in(guest.serialLog());
  std::string line;
  while (std::getline(in, line))
    if (line.find("Kernel panic") != std::string::npos) return true;
  return false;
}

void withGuestImage(int attempts,
                    const std::function<void(const GuestImage&, bool& guestPanicked)>& body) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (kernel test label)";
  TempDir cache;
  std::string whyNot;
  auto image = prepareGuestImage(cache.path(), whyNot);
  if (!image) GTEST_SKIP() << whyNot;
  retryWhileGuestPanics(attempts, [&](bool& guestPanicked) { body(*image, guestPanicked); });
}

void expectGuestRunsOnAtDestination(QemuGuest& source, QemuGuest& destination,
                                    bool& guestPanicked) {
  auto sourceState = source.qmp().queryStatus();
  ASSERT_TRUE(sourceState) << sourceState.error().message();
  EXPECT_EQ(*sourceState, "postmigrate");
  // The source reports "completed" once it has sent the last bytes; the
  // destination still loads them and only then runs the guest.
  auto destinationState = destination.qmp().queryStatus();
  for (auto deadline = std::chrono::steady_clock::now() + 10s;
       destinationState && *destinationState == "inmigrate" &&
       std::chrono::steady_clock::now() < deadline;
       destinationState = destination.qmp().queryStatus())
    std::this_thread::sleep_for(50ms);
  if (!destinationState && guestKernelPanicked(destination)) {
    guestPanicked = true;
    return;
  }
  ASSERT_TRUE(destinationState) << destinationState.error().message() << "\n"
                                << destination.lastWords();
  EXPECT_EQ(*destinationState, "running") << destination.lastWords();

  CounterProgress before = source.progress();
  ASSERT_GE(before.lastPass, 0) << "source never reported progress";
  bool continued = destination.waitForPassBeyond(before.lastPass + 2, 20s);
  if (!continued && guestKernelPanicked(destination)) {
    guestPanicked = true;
    return;
  }
  EXPECT_TRUE(continued)
      << "the guest's counter did not continue on the destination (last on source: pass "
      << before.lastPass << ", on destination: " << destination.progress().lastPass
      << (destination.progress().broken ? ", pattern broken" : "") << ")\n"
      << destination.lastWords();
  EXPECT_FALSE(destination.progress().broken) << "memory pattern broken after migration";
}

std::unique_ptr<TransferServer> loopbackTunnelServer(const TempDir& dir,
                                                     const std::string& destination,
                                                     const std::string& destinationQmp) {
  ::mkdir((dir / "staging").c_str(), 0755);
  ServerConfig config;
  config.stagingDirectory = dir / "staging";
  config.listen = Endpoint{"127.0.0.1", 0};
  config.tunnelDestination = destination;
  config.tunnelDestinationQmp = destinationQmp;
  auto server = TransferServer::create(config);
  EXPECT_TRUE(server) << server.error().message();
  if (!server) return nullptr;
  (*server)->start();
  return std::move(*server);
}

std::unique_ptr<QemuGuest> startSourceGuest(const GuestImage& image, const std::string& workDir) {
  std::string error;
  auto source = QemuGuest::start(image, workDir, "source", "", error);
  if (!source) {
    ADD_FAILURE() << error;
    return nullptr;
  }
  if (!source->waitForPassBeyond(3, std::chrono::seconds(45))) {
    ADD_FAILURE() << "the guest did not start its workload; serial log: " << source->serialLog();
    return nullptr;
  }
  return source;
}

}  // namespace Atoll::transfer::testing
