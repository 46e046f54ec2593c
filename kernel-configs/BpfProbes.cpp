#include "kernel-configs/BpfProbes.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "capability_probe.h"
#include "capability_probe.skel.h"
#include "kernel-configs/ScratchCgroup.h"
#include "util/Result.h"
#include "util/UniqueFd.h"

namespace Atoll::capability {

namespace {

constexpr const char* kObjectName = "capability_probe.bpf.o";
constexpr const char* kProcsFile = "cgroup.procs";
constexpr const char* kLoopback = "127.0.0.1";

// Context switches the sched_switch probe provokes; each sleep switches
// this thread out at least once.
constexpr int kSleeps = 20;
constexpr auto kSleep = std::chrono::milliseconds(1);
constexpr std::size_t kTestPacketBytes = 64;
constexpr auto kChildDeadline = std::chrono::seconds(2);

enum class ProbeProgram { SchedSwitch, Ringbuf, CgroupEgress, IterTask };

struct ProgramInfo {
  const char* feature;
  const char* fix;
};

ProgramInfo infoOf(ProbeProgram program) {
  switch (program) {
    case ProbeProgram::SchedSwitch:
      return {"bpf.tp_btf",
              "CONFIG_BPF_SYSCALL=y, CONFIG_BPF_JIT=y, CONFIG_DEBUG_INFO_BTF=y (Linux 5.5 or "
              "later); run as root"};
    case ProbeProgram::Ringbuf:
      return {"bpf.ringbuf", "CONFIG_BPF_SYSCALL=y (Linux 5.8 or later); run as root"};
    case ProbeProgram::CgroupEgress:
      return {"bpf.cgroup_skb",
              "CONFIG_CGROUP_BPF=y and a cgroup2 mount (bpf_link attach needs Linux 5.7 or later); "
              "run as root"};
    case ProbeProgram::IterTask:
      return {"bpf.iter_task",
              "CONFIG_BPF_SYSCALL=y, CONFIG_DEBUG_INFO_BTF=y (Linux 5.8 or later); run as root"};
  }
  return {"bpf", ""};
}

bpf_program* programOf(capability_probe* skeleton, ProbeProgram program) {
  switch (program) {
    case ProbeProgram::SchedSwitch:
      return skeleton->progs.probe_sched_switch;
    case ProbeProgram::Ringbuf:
      return skeleton->progs.probe_ringbuf;
    case ProbeProgram::CgroupEgress:
      return skeleton->progs.probe_cgroup_egress;
    case ProbeProgram::IterTask:
      return skeleton->progs.probe_iter_task;
  }
  return nullptr;
}

constexpr ProbeProgram kAllPrograms[] = {ProbeProgram::SchedSwitch, ProbeProgram::Ringbuf,
                                         ProbeProgram::CgroupEgress, ProbeProgram::IterTask};

// libbpf prints load failures (verifier logs included) through one global
// callback; while a probe loads, its warnings are kept for the report
// instead of going to stderr.
std::string& capturedLibbpfLog() {
  static std::string log;
  return log;
}

int captureLibbpfMessage(libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  char buffer[1024];
  int n = std::vsnprintf(buffer, sizeof buffer, format, args);
  if (n > 0) capturedLibbpfLog() += buffer;
  return n;
}

class LibbpfLogCapture {
 public:
  LibbpfLogCapture() : previous_(libbpf_set_print(captureLibbpfMessage)) {
    capturedLibbpfLog().clear();
  }
  LibbpfLogCapture(const LibbpfLogCapture&) = delete;
  LibbpfLogCapture& operator=(const LibbpfLogCapture&) = delete;
  ~LibbpfLogCapture() { libbpf_set_print(previous_); }

  // The last lines libbpf printed: the reason, not the whole verifier log.
  static std::string lastLines() {
    constexpr int kLines = 2;
    std::string log = capturedLibbpfLog();
    while (!log.empty() && (log.back() == '\n' || log.back() == ' ')) log.pop_back();
    std::size_t cut = log.size();
    for (int i = 0; i < kLines && cut != std::string::npos && cut > 0; ++i)
      cut = log.rfind('\n', cut - 1);
    std::string tail = cut == std::string::npos ? log : log.substr(cut + 1);
    for (auto& c : tail)
      if (c == '\n') c = ' ';
    return tail;
  }

 private:
  libbpf_print_fn_t previous_;
};

struct SkeletonDeleter {
  void operator()(capability_probe* skeleton) const { capability_probe__destroy(skeleton); }
};
using Skeleton = std::unique_ptr<capability_probe, SkeletonDeleter>;

struct LinkDeleter {
  void operator()(bpf_link* link) const { bpf_link__destroy(link); }
};
using Link = std::unique_ptr<bpf_link, LinkDeleter>;

std::string errorText(const std::string& what, int errnum, const std::string& libbpfLog) {
  std::string out = Error::fromErrno(what, kObjectName, errnum).message();
  if (!libbpfLog.empty()) out += " [" + libbpfLog + "]";
  if (errnum == EPERM) out += " (needs root: CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN)";
  return out;
}

// Opens the object and loads only `only`; the ring buffer map is created
// only for the program that uses it, so a kernel without it fails that probe
// alone.
Result<Skeleton> loadOnly(ProbeProgram only) {
  LibbpfLogCapture capture;
  Skeleton skeleton(capability_probe__open());
  if (!skeleton)
    return Error::invalid("open", kObjectName, {}, errorText("open", errno, capture.lastLines()));
  for (ProbeProgram program : kAllPrograms)
    bpf_program__set_autoload(programOf(skeleton.get(), program), program == only);
  bpf_map__set_autocreate(skeleton->maps.records, only == ProbeProgram::Ringbuf);
  skeleton->rodata->target_tgid = static_cast<__u32>(::getpid());
  if (int rc = capability_probe__load(skeleton.get()); rc != 0)
    return Error::invalid("load", kObjectName, bpf_program__name(programOf(skeleton.get(), only)),
                          errorText("load", -rc, capture.lastLines()));
  return skeleton;
}

Feature failed(ProbeProgram program, const std::string& detail) {
  auto info = infoOf(program);
  return Feature::absent(info.feature, true, detail, info.fix);
}

Feature failed(ProbeProgram program, const Error& error) {
  return failed(program, error.detail.empty() ? error.message() : error.detail);
}

Result<Link> attach(ProbeProgram program, bpf_link* raw, const std::string& what) {
  if (raw != nullptr) return Link(raw);
  int errnum = errno;
  return Error::invalid("attach", kObjectName, what,
                        errorText("attach " + what, errnum, LibbpfLogCapture::lastLines()) + " (" +
                            infoOf(program).feature + ")");
}

Feature probeSchedSwitch() {
  constexpr auto program = ProbeProgram::SchedSwitch;
  auto skeleton = loadOnly(program);
  if (!skeleton) return failed(program, skeleton.error());
  LibbpfLogCapture capture;
  auto link = attach(program, bpf_program__attach(skeleton->get()->progs.probe_sched_switch),
                     "tp_btf/sched_switch");
  if (!link) return failed(program, link.error());
  for (int i = 0; i < kSleeps; ++i) std::this_thread::sleep_for(kSleep);
  __u64 seen = __atomic_load_n(&skeleton->get()->bss->switches_seen, __ATOMIC_RELAXED);
  if (seen == 0)
    return failed(program, "tp_btf/sched_switch attached but saw none of this process's " +
                               std::to_string(kSleeps) + " sleeps");
  return Feature::ok(infoOf(program).feature, true,
                     "CO-RE program attached to tp_btf/sched_switch saw " + std::to_string(seen) +
                         " context switches of this process");
}

Feature probeRingbuf() {
  constexpr auto program = ProbeProgram::Ringbuf;
  auto skeleton = loadOnly(program);
  if (!skeleton) return failed(program, skeleton.error());

  struct Received {
    int records = 0;
    capability_probe_record last{};
  } received;
  auto onRecord = [](void* context, void* data, size_t size) -> int {
    auto* out = static_cast<Received*>(context);
    if (size >= sizeof(capability_probe_record)) {
      ++out->records;
      std::memcpy(&out->last, data, sizeof out->last);
    }
    return 0;
  };
  LibbpfLogCapture capture;
  std::unique_ptr<ring_buffer, decltype(&ring_buffer__free)> ring(
      ring_buffer__new(bpf_map__fd(skeleton->get()->maps.records), onRecord, &received, nullptr),
      &ring_buffer__free);
  if (!ring) return failed(program, errorText("ring_buffer__new", errno, capture.lastLines()));

  // An all-zero Ethernet frame is enough for a socket filter's test run.
  char packet[kTestPacketBytes] = {};
  bpf_test_run_opts run{};
  run.sz = sizeof run;
  run.data_in = packet;
  run.data_size_in = sizeof packet;
  run.repeat = 1;
  if (bpf_prog_test_run_opts(bpf_program__fd(skeleton->get()->progs.probe_ringbuf), &run) != 0)
    return failed(program, errorText("BPF_PROG_TEST_RUN", errno, capture.lastLines()));
  if (int rc = ring_buffer__consume(ring.get()); rc < 0)
    return failed(program, errorText("ring_buffer__consume", -rc, capture.lastLines()));
  if (received.records != 1)
    return failed(program,
                  "expected 1 ring buffer record, received " + std::to_string(received.records));
  if (received.last.magic != CAPABILITY_PROBE_MAGIC || received.last.packet_length == 0 ||
      received.last.packet_length > kTestPacketBytes)
    return failed(program, "ring buffer record arrived mangled");
  return Feature::ok(infoOf(program).feature, true,
                     "record submitted by a test-run program read back through a ring buffer "
                     "map");
}

// Sends one UDP datagram to the receiver's port from a child process that
// first moves itself into the scratch cgroup; returns the child's verdict.
Result<void> sendFromCgroup(const ScratchCgroup& cgroup, const sockaddr_in& receiver) {
  auto procs = cgroup.dir().openFile(kProcsFile, O_WRONLY);
  if (!procs) return procs.error();
  pid_t child = ::fork();
  if (child < 0) return Error::fromErrno("fork", "cgroup_skb probe", errno);
  if (child == 0) {
    // Only system calls from here on: "0" moves the writing process.
    if (::write(procs->get(), "0", 1) != 1) ::_exit(2);
    int sender = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sender < 0) ::_exit(3);
    const char payload[] = "atoll";
    if (::sendto(sender, payload, sizeof payload, 0, reinterpret_cast<const sockaddr*>(&receiver),
                 sizeof receiver) != static_cast<ssize_t>(sizeof payload))
      ::_exit(4);
    ::_exit(0);
  }
  int status = 0;
  auto deadline = std::chrono::steady_clock::now() + kChildDeadline;
  for (;;) {
    pid_t done = ::waitpid(child, &status, WNOHANG);
    if (done == child) break;
    if (done < 0 && errno != EINTR) return Error::fromErrno("waitpid", "cgroup_skb probe", errno);
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(child, SIGKILL);
      ::waitpid(child, &status, 0);
      return Error::invalid("wait", cgroup.path(), {}, "sender in the scratch cgroup hung");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    const char* step = "exited abnormally";
    if (WIFEXITED(status) && WEXITSTATUS(status) == 2) step = "could not join the scratch cgroup";
    if (WIFEXITED(status) && WEXITSTATUS(status) == 3) step = "could not open a UDP socket";
    if (WIFEXITED(status) && WEXITSTATUS(status) == 4) step = "could not send over loopback";
    return Error::invalid("send", cgroup.path(), {}, std::string("sender ") + step);
  }
  return ok();
}

Feature probeCgroupEgress(const std::optional<std::string>& cgroup2Path) {
  constexpr auto program = ProbeProgram::CgroupEgress;
  if (!cgroup2Path) return failed(program, "no cgroup2 mount to attach to");
  auto skeleton = loadOnly(program);
  if (!skeleton) return failed(program, skeleton.error());
  auto scratch = ScratchCgroup::create(*cgroup2Path);
  if (!scratch) return failed(program, scratch.error());

  UniqueFd receiver(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!receiver.valid())
    return failed(program, Error::fromErrno("socket", "AF_INET SOCK_DGRAM", errno));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  ::inet_pton(AF_INET, kLoopback, &address.sin_addr);
  socklen_t length = sizeof address;
  if (::bind(receiver.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::getsockname(receiver.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0)
    return failed(program, Error::fromErrno("bind", kLoopback, errno));

  __u64 sent = 0;
  {
    LibbpfLogCapture capture;
    auto link = attach(
        program,
        bpf_program__attach_cgroup(skeleton->get()->progs.probe_cgroup_egress, scratch->dir().fd()),
        "cgroup_skb/egress on " + scratch->path());
    if (!link) return failed(program, link.error());
    if (auto sentOk = sendFromCgroup(*scratch, address); !sentOk)
      return failed(program, sentOk.error());
    sent = __atomic_load_n(&skeleton->get()->bss->egress_packets, __ATOMIC_RELAXED);
  }
  char buffer[16];
  bool delivered = ::recv(receiver.get(), buffer, sizeof buffer, 0) > 0;
  auto removed = scratch->remove();
  if (sent == 0) return failed(program, "attached, but counted no packet from the scratch cgroup");
  if (!delivered)
    return failed(program, "counted the packet but it never arrived: egress dropped it");
  std::string detail = "attached through a bpf_link to a scratch cgroup; counted " +
                       std::to_string(sent) + " egress packet(s) and let them through";
  if (!removed) detail += "; " + removed.error().message();
  return Feature::ok(infoOf(program).feature, true, detail);
}

Feature probeIterTask() {
  constexpr auto program = ProbeProgram::IterTask;
  auto skeleton = loadOnly(program);
  if (!skeleton) return failed(program, skeleton.error());
  LibbpfLogCapture capture;
  auto link =
      attach(program, bpf_program__attach_iter(skeleton->get()->progs.probe_iter_task, nullptr),
             "iter/task");
  if (!link) return failed(program, link.error());
  UniqueFd iterator(bpf_iter_create(bpf_link__fd(link->get())));
  if (!iterator.valid())
    return failed(program, errorText("bpf_iter_create", errno, capture.lastLines()));
  std::string text;
  char buffer[4096];
  for (;;) {
    ssize_t n = ::read(iterator.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return failed(program, errorText("read task iterator", errno, capture.lastLines()));
    if (n == 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
  }
  std::size_t processes = 0;
  bool foundSelf = false;
  std::string self = std::to_string(::getpid());
  std::size_t start = 0;
  while (start < text.size()) {
    auto end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (end > start) ++processes;
    if (text.compare(start, end - start, self) == 0) foundSelf = true;
    start = end + 1;
  }
  if (!foundSelf)
    return failed(program, "iterated " + std::to_string(processes) +
                               " processes without finding this one (pid " + self + ")");
  return Feature::ok(
      infoOf(program).feature, true,
      "task iterator listed " + std::to_string(processes) + " processes, this one among them");
}

}  // namespace

std::vector<Feature> probeBpfPrograms(const std::optional<std::string>& cgroup2Path) {
  return {probeSchedSwitch(), probeRingbuf(), probeCgroupEgress(cgroup2Path), probeIterTask()};
}

}  // namespace Atoll::capability
