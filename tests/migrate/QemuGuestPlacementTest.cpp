// QemuGuest::placeThreads, which the QEMU benchmark relies on to give each
// vCPU a CPU of its own: after it, every vCPU thread QEMU names over QMP may
// run on the vCPU CPU only and every other thread of that QEMU on the other
// CPU only, as read back from the kernel, and the guest keeps running. A CPU
// the host does not have is refused with the thread and the CPU named.
#include <sched.h>
#include <sys/sysinfo.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "MigrationChecks.h"
#include "QemuGuest.h"
#include "TestImages.h"
#include "migrate/transfer/TransferCpus.h"

namespace Atoll::transfer {
namespace {

using testing::QemuGuest;
using testing::TempDir;
using namespace std::chrono_literals;

// A thread's `Cpus_allowed_list` from /proc, as the kernel reports it; empty
// for a thread gone meanwhile.
std::string allowedCpus(pid_t process, const std::string& thread) {
  std::ifstream status("/proc/" + std::to_string(process) + "/task/" + thread + "/status");
  std::string line;
  const std::string key = "Cpus_allowed_list:";
  while (std::getline(status, line))
    if (line.rfind(key, 0) == 0) return line.substr(line.find_first_not_of(" \t", key.size()));
  return {};
}

void placeAndCheck(const testing::GuestImage& image, bool& /*guestPanicked*/) {
  auto allowed = threadCpus();
  ASSERT_TRUE(allowed) << allowed.error().message();
  if (allowed->size() < 2)
    GTEST_SKIP() << "placing threads apart needs two CPUs; this process has " << allowed->size();
  const int cpus[] = {static_cast<int>((*allowed)[0]), static_cast<int>((*allowed)[1])};
  TempDir dir;
  auto guest = testing::startSourceGuest(image, dir.path());
  ASSERT_TRUE(guest);

  // A CPU the host does not have is refused, naming the thread and the CPU.
  if (const int missing = ::get_nprocs_conf(); missing < CPU_SETSIZE) {
    std::string error;
    EXPECT_FALSE(guest->placeThreads(cpus[0], missing, error));
    EXPECT_NE(error.find("CPU " + std::to_string(missing)), std::string::npos) << error;
    EXPECT_NE(error.find("sched_setaffinity("), std::string::npos) << error;
  }

  std::string error;
  ASSERT_TRUE(guest->placeThreads(cpus[0], cpus[1], error)) << error;

  auto vcpus = guest->qmp().execute("query-cpus-fast");
  ASSERT_TRUE(vcpus) << vcpus.error().message();
  std::set<std::string> vcpuThreads;
  for (const auto& vcpu : *vcpus)
    vcpuThreads.insert(std::to_string(vcpu.at("thread-id").get<int>()));
  ASSERT_FALSE(vcpuThreads.empty());

  size_t others = 0;
  const std::string tasks = "/proc/" + std::to_string(guest->pid()) + "/task";
  for (const auto& entry : std::filesystem::directory_iterator(tasks)) {
    const std::string thread = entry.path().filename();
    const std::string allowed = allowedCpus(guest->pid(), thread);
    if (allowed.empty()) continue;  // an idle worker that exited
    const bool vcpu = vcpuThreads.count(thread) != 0;
    EXPECT_EQ(allowed, std::to_string(vcpu ? cpus[0] : cpus[1]))
        << "thread " << thread << (vcpu ? " (vCPU)" : "");
    if (!vcpu) ++others;
  }
  EXPECT_GE(others, 1u) << "QEMU's main thread was not among the threads read";

  // The guest runs on where it was placed.
  const int64_t pass = guest->progress().lastPass;
  EXPECT_TRUE(guest->waitForPassBeyond(pass + 2, 30s)) << guest->lastWords();
}

TEST(QemuGuestPlacement, VcpusAndEmulatorThreadsRunWhereTheyArePlaced) {
  testing::withGuestImage(3, placeAndCheck);
}

}  // namespace
}  // namespace Atoll::transfer
