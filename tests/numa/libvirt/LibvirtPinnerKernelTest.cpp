// LibvirtPinner on a real libvirtd: the test starts virtlogd and libvirtd
// (no systemd here), defines a small type='qemu' domain (TCG: the Debian
// kernel of the test VM, a busybox initramfs, two NUMA cells), pins it to an
// island through Atoll, and checks that libvirt's view (virsh vcpupin,
// emulatorpin, iothreadinfo, numatune, the live and persistent XML) and the
// QEMU threads' affinity all agree. The daemons are stopped by PID.
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <thread>

#include "numa/BoundedVmPinner.h"
#include "numa/CpuSet.h"
#include "numa/DomainPinning.h"
#include "numa/LibvirtPinner.h"
#include "util/Fs.h"

namespace Atoll::numa {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* kUri = "qemu:///system";
constexpr const char* kVirtlogdPidFile = "/run/virtlogd.pid";
constexpr const char* kLibvirtdPidFile = "/run/libvirtd.pid";
constexpr auto kDaemonStartTimeout = 15s;
constexpr auto kDaemonStopTimeout = 10s;
constexpr int kFetchKernelTimeoutS = 300;

struct CommandResult {
  int status = -1;
  std::string output;
};

CommandResult run(const std::string& command) {
  CommandResult result;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  std::size_t got = 0;
  while ((got = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) result.output.append(buffer, got);
  int status = ::pclose(pipe);
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

bool onPath(const std::string& tool) {
  return run("command -v " + tool + " >/dev/null").status == 0;
}

std::optional<pid_t> pidFromFile(const char* path) {
  auto text = readFile(path);
  if (!text) return std::nullopt;
  try {
    pid_t pid = std::stoi(std::string(trim(*text)));
    if (pid > 0 && ::kill(pid, 0) == 0) return pid;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

// Sends SIGTERM and waits for the process to go.
void stopByPid(pid_t pid) {
  if (::kill(pid, SIGTERM) != 0) return;
  const auto deadline = std::chrono::steady_clock::now() + kDaemonStopTimeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::kill(pid, 0) != 0) return;
    std::this_thread::sleep_for(50ms);
  }
  ::kill(pid, SIGKILL);
}

CpuList affinityOf(pid_t tid) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CpuList cpus;
  if (::sched_getaffinity(tid, sizeof set, &set) != 0) return cpus;
  for (unsigned cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  return cpus;
}

// "virsh vcpupin" rows: " 0      1" -> {0: "1"}.
std::map<std::string, std::string> tableRows(const std::string& text) {
  std::map<std::string, std::string> rows;
  static const std::regex row(R"(^\s*([^\s:]+):?\s+(\S+)\s*$)");
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    std::smatch match;
    if (std::regex_match(line, match, row)) rows[match[1]] = match[2];
  }
  return rows;
}

// The daemons and the domain, set up once for the suite (starting them
// is most of the test's time). A reason to skip or a setup failure is kept
// and reported by every test.
class LibvirtHost {
 public:
  void setUp() {
    // As in atolld: a libvirt client writing to a libvirtd that went away
    // gets EPIPE instead of dying of SIGPIPE.
    ::signal(SIGPIPE, SIG_IGN);
    if (::geteuid() != 0) return skip("needs root to start libvirtd");
    for (const char* tool : {"virtlogd", "libvirtd", "virsh", "qemu-system-x86_64", "flock"})
      if (!onPath(tool)) return skip(std::string(tool) + " is not installed");
    if (!prepareGuest() || !startDaemons()) return;
    defineAndStartDomain();
  }

  void tearDown() {
    if (!domain_.empty()) {
      run(virsh() + " destroy " + domain_);
      run(virsh() + " undefine " + domain_);
    }
    pinner_.reset();
    if (startedLibvirtd_) stopByPid(*startedLibvirtd_);
    if (startedVirtlogd_) stopByPid(*startedVirtlogd_);
    if (!work_.empty()) fs::remove_all(work_);
  }

  // Stops the libvirtd this test started and starts it again; waits until
  // the new one has taken the running domain back. Empty when done, or why
  // not.
  std::string restartLibvirtd() {
    if (!startedLibvirtd_) return "libvirtd ran before the test: it is not restarted";
    stopByPid(*startedLibvirtd_);
    startedLibvirtd_.reset();
    auto started = run("libvirtd -d");
    if (started.status == 0) startedLibvirtd_ = waitForPidFile(kLibvirtdPidFile);
    if (!startedLibvirtd_) return "libvirtd did not start again: " + started.output;
    const auto deadline = std::chrono::steady_clock::now() + kDaemonStartTimeout;
    std::string state;
    while (std::chrono::steady_clock::now() < deadline) {
      state = run(virsh() + " domstate " + domain_).output;
      if (state.find("running") != std::string::npos) return {};
      std::this_thread::sleep_for(100ms);
    }
    return "the restarted libvirtd does not list " + domain_ + " as running: " + state;
  }

  std::string skipReason;
  std::string failure;
  std::string domain_;
  std::unique_ptr<LibvirtPinner> pinner_;

  pid_t qemuPid() const {
    auto pid = pidFromFile(("/run/libvirt/qemu/" + domain_ + ".pid").c_str());
    return pid.value_or(0);
  }

  // The Debian kernel of the test VM (fetched once into its cache) and a
  // busybox initramfs whose init only waits.
  static std::string virsh() { return std::string("virsh -q -c ") + kUri; }

 private:
  void skip(std::string reason) { skipReason = std::move(reason); }
  bool fail(std::string what) {
    failure = std::move(what);
    return false;
  }

  bool prepareGuest() {
    work_ = fs::path(ATOLL_TESTVM_WORK) / ("libvirt-pin-" + std::to_string(::getpid()));
    fs::create_directories(work_);
    auto fetched = run("flock " + std::string(ATOLL_TESTVM_WORK) + "/kernel.lock timeout " +
                       std::to_string(kFetchKernelTimeoutS) + " bash " + ATOLL_TESTVM_SCRIPTS +
                       "/fetch-kernel.sh " + ATOLL_TESTVM_KERNEL_CACHE + " 2>/dev/null");
    if (fetched.status != 0) {
      skip("no guest kernel: fetch-kernel.sh failed: " + fetched.output);
      return false;
    }
    const std::string kernelDir(trim(fetched.output));
    auto version = readFile(kernelDir + "/unpacked.stamp");
    if (!version) return fail(version.error().message());
    kernel_ = kernelDir + "/boot/vmlinuz-" + std::string(trim(*version));
    if (!fs::exists(kernel_)) return fail("no kernel image " + kernel_);
    const fs::path init = work_ / "init.sh";
    std::ofstream(init) << "#!/bin/sh\nmount -t proc proc /proc\n"
                           "echo atoll libvirt pinning guest up\n"
                           "while true; do sleep 3600; done\n";
    initrd_ = (work_ / "initrd.cpio").string();
    auto built = run("bash " + std::string(ATOLL_TESTVM_SCRIPTS) + "/build-initramfs.sh " +
                     kernelDir + " " + init.string() + " " + initrd_);
    if (built.status != 0) return fail("build-initramfs.sh: " + built.output);
    return true;
  }

  // Starts virtlogd and libvirtd unless they already run (they are then
  // left alone), and waits until libvirtd answers.
  bool startDaemons() {
    if (!pidFromFile(kVirtlogdPidFile)) {
      auto started = run("virtlogd -d");
      if (started.status == 0) startedVirtlogd_ = waitForPidFile(kVirtlogdPidFile);
      if (!startedVirtlogd_) {
        skip("virtlogd cannot start: " + started.output);
        return false;
      }
    }
    if (!pidFromFile(kLibvirtdPidFile)) {
      auto started = run("libvirtd -d");
      if (started.status == 0) startedLibvirtd_ = waitForPidFile(kLibvirtdPidFile);
      if (!startedLibvirtd_) {
        skip("libvirtd cannot start: " + started.output);
        return false;
      }
    }
    const auto deadline = std::chrono::steady_clock::now() + kDaemonStartTimeout;
    while (true) {
      auto connected = LibvirtPinner::connect(kUri);
      if (connected) {
        pinner_ = std::move(*connected);
        return true;
      }
      if (std::chrono::steady_clock::now() > deadline) {
        skip("libvirtd does not answer: " + connected.error().message());
        return false;
      }
      std::this_thread::sleep_for(100ms);
    }
  }

  static std::optional<pid_t> waitForPidFile(const char* path) {
    const auto deadline = std::chrono::steady_clock::now() + kDaemonStartTimeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (auto pid = pidFromFile(path)) return pid;
      std::this_thread::sleep_for(50ms);
    }
    return std::nullopt;
  }

  void defineAndStartDomain() {
    const std::string name = "atoll-pin-test-" + std::to_string(::getpid());
    const fs::path xml = work_ / "domain.xml";
    std::ofstream(xml) << "<domain type='qemu'>\n"
                       << "  <name>" << name << "</name>\n"
                       << "  <memory unit='MiB'>256</memory>\n"
                       << "  <vcpu placement='static'>2</vcpu>\n"
                       << "  <iothreads>1</iothreads>\n"
                       << "  <cpu><numa>\n"
                       << "    <cell id='0' cpus='0' memory='128' unit='MiB'/>\n"
                       << "    <cell id='1' cpus='1' memory='128' unit='MiB'/>\n"
                       << "  </numa></cpu>\n"
                       << "  <os><type arch='x86_64' machine='pc'>hvm</type>\n"
                       << "    <kernel>" << kernel_ << "</kernel>\n"
                       << "    <initrd>" << initrd_ << "</initrd>\n"
                       << "    <cmdline>console=ttyS0 panic=-1</cmdline>\n"
                       << "  </os>\n"
                       << "  <features><acpi/></features>\n"
                       << "  <on_poweroff>destroy</on_poweroff>\n"
                       << "  <devices><serial type='pty'/><console type='pty'/></devices>\n"
                       << "</domain>\n";
    auto defined = run(virsh() + " define " + xml.string());
    if (defined.status != 0) {
      fail("virsh define: " + defined.output);
      return;
    }
    domain_ = name;
    auto started = run(virsh() + " start " + name);
    if (started.status != 0) fail("virsh start: " + started.output);
  }

  fs::path work_;
  std::string kernel_;
  std::string initrd_;
  std::optional<pid_t> startedVirtlogd_;
  std::optional<pid_t> startedLibvirtd_;
};

class LibvirtPinnerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    host_ = new LibvirtHost;
    host_->setUp();
  }
  static void TearDownTestSuite() {
    host_->tearDown();
    delete host_;
    host_ = nullptr;
  }
  void SetUp() override {
    if (!host_->skipReason.empty()) GTEST_SKIP() << host_->skipReason;
    ASSERT_TRUE(host_->failure.empty()) << host_->failure;
    domain_ = host_->domain_;
    pinner_ = host_->pinner_.get();
  }
  static std::string virsh() { return LibvirtHost::virsh(); }
  pid_t qemuPid() const { return host_->qemuPid(); }

  static LibvirtHost* host_;
  std::string domain_;
  LibvirtPinner* pinner_ = nullptr;
};

LibvirtHost* LibvirtPinnerTest::host_ = nullptr;

TEST_F(LibvirtPinnerTest, PinsVmToIslandAndLibvirtAndThreadsAgree) {
  // The island: the host's last CPU and node 0.
  const unsigned last = pinner_->hostCpuCount() - 1;
  Island island;
  island.name = "guests";
  island.cpus = {last};
  island.memNodes = {0};
  const std::string cpus = formatCpuList(island.cpus);

  auto before = pinner_->pinning(domain_);
  ASSERT_TRUE(before) << before.error().message();
  ASSERT_EQ(before->vcpus.size(), 2u);
  ASSERT_EQ(before->iothreads.size(), 1u);

  auto change = pinDomainToIsland(*pinner_, island, domain_);
  ASSERT_TRUE(change) << change.error().message();

  // Atoll's own reading back through libvirt.
  auto after = pinner_->pinning(domain_);
  ASSERT_TRUE(after) << after.error().message();
  EXPECT_EQ(after->vcpus, (std::vector<CpuList>{island.cpus, island.cpus}));
  EXPECT_EQ(after->emulator, island.cpus);
  ASSERT_EQ(after->iothreads.size(), 1u);
  EXPECT_EQ(after->iothreads[0].cpus, island.cpus);
  EXPECT_EQ(after->memoryNodes, island.memNodes);

  // libvirt's view through virsh.
  auto vcpupin = tableRows(run(virsh() + " vcpupin " + domain_).output);
  EXPECT_EQ(vcpupin["0"], cpus);
  EXPECT_EQ(vcpupin["1"], cpus);
  const std::string emulatorText = run(virsh() + " emulatorpin " + domain_).output;
  // "virsh -q emulatorpin" prints the bare CPU list ("*: LIST" without -q).
  std::string_view emulatorCpus = trim(emulatorText);
  emulatorCpus.remove_prefix(std::min(emulatorCpus.size(), emulatorCpus.find_last_of(" :") + 1));
  EXPECT_EQ(emulatorCpus, cpus) << emulatorText;
  auto iothreads = tableRows(run(virsh() + " iothreadinfo " + domain_).output);
  EXPECT_EQ(iothreads["1"], cpus);
  auto numatune = run(virsh() + " numatune " + domain_).output;
  EXPECT_NE(numatune.find("numa_nodeset   : 0"), std::string::npos) << numatune;
  EXPECT_NE(numatune.find("numa_mode      : restrictive"), std::string::npos) << numatune;
  for (const char* which : {"", " --inactive"}) {
    auto xml = run(virsh() + " dumpxml " + domain_ + which).output;
    EXPECT_NE(xml.find("<vcpupin vcpu='1' cpuset='" + cpus + "'/>"), std::string::npos)
        << which << xml;
    EXPECT_NE(xml.find("<emulatorpin cpuset='" + cpus + "'/>"), std::string::npos) << which;
    EXPECT_NE(xml.find("<iothreadpin iothread='1' cpuset='" + cpus + "'/>"), std::string::npos)
        << which;
    EXPECT_NE(xml.find("nodeset='0'"), std::string::npos) << which;
  }

  // The QEMU threads themselves: vCPU threads ("CPU n/TCG"), the I/O
  // thread ("IO iothread1") and every emulator thread on the island.
  const pid_t qemu = qemuPid();
  ASSERT_GT(qemu, 0);
  unsigned vcpuThreads = 0;
  unsigned iothreadThreads = 0;
  unsigned threads = 0;
  for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(qemu) + "/task")) {
    const pid_t tid = std::stoi(task.path().filename().string());
    auto comm = readFile(task.path().string() + "/comm");
    if (!comm) continue;  // the thread exited
    const std::string name(trim(*comm));
    ++threads;
    if (name.rfind("CPU ", 0) == 0) ++vcpuThreads;
    if (name == "IO iothread1") ++iothreadThreads;
    EXPECT_EQ(affinityOf(tid), island.cpus) << "thread " << tid << " (" << name << ")";
  }
  EXPECT_EQ(vcpuThreads, 2u);
  EXPECT_EQ(iothreadThreads, 1u);
  EXPECT_GT(threads, vcpuThreads + iothreadThreads);

  // Back to every CPU (the shared island of a host without islands).
  CpuList all;
  for (unsigned cpu = 0; cpu <= last; ++cpu) all.push_back(cpu);
  auto back = pinDomain(*pinner_, domain_, all, {0});
  ASSERT_TRUE(back) << back.error().message();
  auto unpinned = tableRows(run(virsh() + " vcpupin " + domain_).output);
  EXPECT_EQ(unpinned["0"], formatCpuList(all));
}

TEST_F(LibvirtPinnerTest, UnknownVmAndMissingCpuAreErrorsThatChangeNothing) {
  Island island;
  island.name = "guests";
  island.cpus = {0};
  island.memNodes = {0};
  auto unknown = pinDomainToIsland(*pinner_, island, "no-such-vm-atoll");
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message().find("'no-such-vm-atoll'"), std::string::npos)
      << unknown.error().message();

  auto before = pinner_->pinning(domain_);
  ASSERT_TRUE(before) << before.error().message();
  const unsigned missing = pinner_->hostCpuCount() + 7;
  island.cpus = {missing};
  auto refused = pinDomainToIsland(*pinner_, island, domain_);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("'" + std::to_string(missing) + "'"), std::string::npos)
      << refused.error().message();
  auto after = pinner_->pinning(domain_);
  ASSERT_TRUE(after);
  EXPECT_EQ(*after, *before);
}

// libvirtd restarts (a package upgrade, an operator): the islands' pinner
// finds its connection closed, connects again and repeats the call, rather
// than fail every call until atolld restarts too.
TEST_F(LibvirtPinnerTest, AfterLibvirtdRestartsTheIslandsPinnerConnectsAgain) {
  BoundedVmPinner bounded(
      []() -> Result<std::unique_ptr<VmPinner>> {
        auto connected = LibvirtPinner::connect(kUri);
        if (!connected) return connected.error();
        return std::unique_ptr<VmPinner>(std::move(*connected));
      },
      kDaemonStartTimeout, "libvirt");
  auto before = bounded.runningDomains();
  ASSERT_TRUE(before) << before.error().message();
  EXPECT_NE(std::find(before->begin(), before->end(), domain_), before->end());

  if (std::string why = host_->restartLibvirtd(); !why.empty()) {
    if (why.find("is not restarted") != std::string::npos) GTEST_SKIP() << why;
    FAIL() << why;
  }
  auto after = bounded.runningDomains();
  ASSERT_TRUE(after) << after.error().message();
  EXPECT_NE(std::find(after->begin(), after->end(), domain_), after->end());
  auto pinning = bounded.pinning(domain_);
  ASSERT_TRUE(pinning) << pinning.error().message();
  EXPECT_EQ(pinning->vcpus.size(), 2u);
}

}  // namespace
}  // namespace Atoll::numa
