#include "QemuGuest.h"

#include <dirent.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>
#include <vector>

#include "TestImages.h"

namespace Atoll::transfer::testing {

namespace {

// Runs a command, returns its stdout (trailing newline removed) and status.
int capture(const std::string& command, std::string& out) {
  out.clear();
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return -1;
  std::array<char, 4096> chunk{};
  size_t n = 0;
  while ((n = std::fread(chunk.data(), 1, chunk.size(), pipe)) > 0) out.append(chunk.data(), n);
  int status = ::pclose(pipe);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

std::optional<GuestImage> prepareGuestImage(const std::string& workDir, std::string& whyNot) {
  if (::access("/usr/bin/qemu-system-x86_64", X_OK) != 0) {
    whyNot = "qemu-system-x86_64 is not installed";
    return std::nullopt;
  }
  std::string kernelDir;
  std::string command = std::string(ATOLL_FETCH_KERNEL_SCRIPT) + " '" + ATOLL_VM_KERNEL_CACHE_DIR +
                        "' 2>" + workDir + "/fetch-kernel.log";
  if (capture(command, kernelDir) != 0 || kernelDir.empty()) {
    whyNot = "cannot fetch Debian's kernel for the guest (no network to Debian's archive?): " +
             readFile(workDir + "/fetch-kernel.log");
    return std::nullopt;
  }
  std::string version;
  capture("cat '" + kernelDir + "/unpacked.stamp'", version);
  GuestImage image{kernelDir + "/boot/vmlinuz-" + version, workDir + "/counter.cpio"};
  std::string output;
  command = std::string(ATOLL_COUNTER_INITRAMFS_SCRIPT) + " '" + ATOLL_COUNTER_GUEST_BINARY +
            "' '" + ATOLL_COUNTER_INIT_SCRIPT + "' '" + image.initrd + "' 2>&1";
  if (capture(command, output) != 0 || !exists(image.initrd)) {
    whyNot = "cannot build the guest initramfs: " + output;
    return std::nullopt;
  }
  return image;
}

CounterProgress readCounterProgress(const std::string& serialLog) {
  CounterProgress progress;
  std::ifstream in(serialLog);
  std::string line;
  static const std::regex passLine(R"(counter-guest: pass (\d+) broken (\d+))");
  std::smatch match;
  while (std::getline(in, line)) {
    if (line.find("PATTERN BROKEN") != std::string::npos) progress.broken = true;
    if (std::regex_search(line, match, passLine)) {
      progress.lastPass = std::stoll(match[1].str());
      if (match[2].str() != "0") progress.broken = true;
    }
  }
  return progress;
}

std::unique_ptr<QemuGuest> QemuGuest::start(const GuestImage& image, const std::string& workDir,
                                            const std::string& name, const std::string& incoming,
                                            std::string& error) {
  std::unique_ptr<QemuGuest> guest(new QemuGuest());
  guest->serialLog_ = workDir + "/" + name + ".serial";
  guest->stderrLog_ = workDir + "/" + name + ".qemu";
  std::string qmpPath = workDir + "/" + name + ".qmp";
  guest->secondQmpPath_ = workDir + "/" + name + ".qmp2";
  // Source and destination must have the same machine: identical lines but
  // for -incoming. One vCPU and 128 MiB keep boot and copy short. The CPU is
  // QEMU's migration-safe baseline model ("max" is documented as not
  // migration-safe), and TCG runs single-threaded: with multi-threaded TCG and
  // "max", a guest moved by QEMU's own direct migration sometimes died right
  // after arriving (a corrupted hrtimer callback, a panic in the timer
  // interrupt) on this QEMU 7.2 -- the reference path, not the tunnel.
  //
  // The RAM size is 128 MiB and 8 KiB, not 128 MiB, to keep QEMU 7.2's TCG
  // from losing guest writes during pre-copy. Its dirty-bitmap sync has a
  // fast path for RAM blocks whose length is a multiple of 64 pages. That
  // path clears the bitmap without re-arming the vCPU's TLB write tracking,
  // so stores through a cached TLB entry are not logged again. The
  // destination then gets stale pages, often the kernel's hrtimer bases,
  // and panics in the timer interrupt (QEMU 9.0 fixes this: "physmem: Fix
  // migration dirty bitmap coherency with TCG memory access"). A length off
  // that multiple takes the slow path, which re-arms the TLB. Measured here,
  // migrating right after boot: 4 of 19 destinations died at 128M and none
  // of 40 at this size, nor in 150 back-and-forth migrations of one guest.
  // QEMU rounds RAM up to 8 KiB, so 8 KiB is the smallest such step.
  std::vector<std::string> args = {"qemu-system-x86_64",
                                   "-accel",
                                   "tcg,thread=single",
                                   "-cpu",
                                   "qemu64",
                                   "-smp",
                                   "1",
                                   "-m",
                                   "131080K",
                                   "-nodefaults",
                                   "-no-user-config",
                                   "-display",
                                   "none",
                                   "-no-reboot",
                                   "-serial",
                                   "file:" + guest->serialLog_,
                                   "-qmp",
                                   "unix:" + qmpPath + ",server=on,wait=off",
                                   "-qmp",
                                   "unix:" + guest->secondQmpPath_ + ",server=on,wait=off",
                                   "-kernel",
                                   image.kernel,
                                   "-initrd",
                                   image.initrd,
                                   "-append",
                                   "console=ttyS0 quiet panic=-1 no_timer_check"};
  if (!incoming.empty()) {
    args.push_back("-incoming");
    args.push_back(incoming);
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    error = "fork failed";
    return nullptr;
  }
  if (pid == 0) {
    FILE* err = std::freopen(guest->stderrLog_.c_str(), "w", stderr);
    (void)err;
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv("/usr/bin/qemu-system-x86_64", argv.data());
    ::_exit(127);
  }
  guest->pid_ = pid;
  auto client = qemu::QmpClient::connect(qmpPath, std::chrono::seconds(20));
  if (!client) {
    error = client.error().message() + "; qemu said: " + readFile(guest->stderrLog_);
    return nullptr;
  }
  guest->qmp_.emplace(std::move(*client));
  return guest;
}

QemuGuest::~QemuGuest() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

std::string QemuGuest::lastWords() const {
  constexpr size_t kTail = 2048;
  auto tail = [](std::string text) {
    return text.size() > kTail ? "..." + text.substr(text.size() - kTail) : text;
  };
  return "serial console: " + tail(readFile(serialLog_)) + "\nqemu: " + tail(readFile(stderrLog_));
}

bool QemuGuest::alive() const {
  return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0;
}

bool QemuGuest::placeThreads(int vcpuCpu, int otherCpu, std::string& error) {
  // 0, or the errno of a thread that could not be placed (named in `error`).
  auto pin = [&](pid_t thread, int cpu) -> int {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (::sched_setaffinity(thread, sizeof set, &set) == 0) return 0;
    const int failed = errno;
    error = "sched_setaffinity(" + std::to_string(thread) + ", CPU " + std::to_string(cpu) +
            "): " + std::strerror(failed);
    return failed;
  };
  const std::string tasks = "/proc/" + std::to_string(pid_) + "/task";
  DIR* dir = ::opendir(tasks.c_str());
  if (dir == nullptr) {
    error = tasks + ": " + std::strerror(errno);
    return false;
  }
  bool placed = true;
  while (dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    // A thread gone since the listing (one of QEMU's idle workers) needs
    // no place.
    const int failed = pin(static_cast<pid_t>(std::atol(entry->d_name)), otherCpu);
    if (failed != 0 && failed != ESRCH) placed = false;
  }
  ::closedir(dir);
  if (!placed) return false;
  auto cpus = qmp().execute("query-cpus-fast");
  if (!cpus) {
    error = cpus.error().message();
    return false;
  }
  for (const auto& cpu : *cpus) {
    if (!cpu.contains("thread-id")) {
      error = "query-cpus-fast gave no thread-id: " + cpu.dump();
      return false;
    }
    if (pin(cpu["thread-id"].get<pid_t>(), vcpuCpu) != 0) return false;
  }
  return true;
}

bool QemuGuest::waitForPassBeyond(int64_t pass, std::chrono::milliseconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    CounterProgress now = progress();
    if (now.broken) return false;
    if (now.lastPass > pass) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

}  // namespace Atoll::transfer::testing
