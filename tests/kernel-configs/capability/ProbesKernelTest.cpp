// Every probe on the real host kernel, each verdict checked against a second,
// independent look at the same kernel interface (a raw system call, the
// control file itself, libbpf's own feature probes, the kernel config), so
// the assertions hold on any correct host, whatever it supports.
#include <arpa/inet.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <linux/magic.h>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "kernel-configs/BpfProbes.h"
#include "kernel-configs/BtfProbe.h"
#include "kernel-configs/CapabilityCheck.h"
#include "kernel-configs/CgroupProbes.h"
#include "kernel-configs/DirtyPageProbes.h"
#include "kernel-configs/DirtyTrackingUapi.h"
#include "kernel-configs/IoUringProbe.h"
#include "kernel-configs/KernelConfigProbe.h"
#include "kernel-configs/KernelTlsProbe.h"
#include "kernel-configs/LibvirtProbe.h"
#include "kernel-configs/NumaProbe.h"
#include "kernel-configs/ScratchCgroup.h"
#include "util/Fs.h"
#include "util/UniqueFd.h"

namespace Atoll::capability {
namespace {

constexpr const char* kMountInfo = "/proc/self/mountinfo";

class ProbesKernelTest : public testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "the capability probes need root (BPF, cgroups)";
  }
};

bool fileExists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::set<std::string> wordsOf(const std::string& text) {
  std::set<std::string> out;
  std::istringstream in(text);
  for (std::string word; in >> word;) out.insert(word);
  return out;
}

// The running kernel's configuration, when the kernel publishes it.
std::optional<KernelConfig> runningConfig() {
  auto text = readRunningKernelConfig(kernelRelease());
  if (!text || !*text) return std::nullopt;
  auto parsed = parseKernelConfig((*text)->text, (*text)->path);
  if (!parsed) return std::nullopt;
  return *parsed;
}

std::vector<std::string> scratchCgroupsLeft(const std::string& cgroup2) {
  std::vector<std::string> left;
  for (const auto& entry : std::filesystem::directory_iterator(cgroup2))
    if (entry.path().filename().string().starts_with(kScratchCgroupPrefix))
      left.push_back(entry.path().string());
  return left;
}

TEST_F(ProbesKernelTest, BtfIsOkExactlyWhenTheKernelPublishesIt) {
  Feature btf = probeBtf();
  EXPECT_EQ(btf.name, "btf");
  EXPECT_EQ(btf.status == FeatureStatus::Ok, fileExists(std::string(kVmlinuxBtfPath)))
      << btf.detail;
}

TEST_F(ProbesKernelTest, BpfVerdictsAgreeWithLibbpfsOwnProbes) {
  auto cgroup2 = locateCgroup2(kMountInfo);
  std::optional<std::string> path;
  if (cgroup2) path = cgroup2->path;
  auto features = probeBpfPrograms(path);
  ASSERT_EQ(features.size(), 4u);
  EXPECT_EQ(features[0].name, "bpf.tp_btf");
  EXPECT_EQ(features[1].name, "bpf.ringbuf");
  EXPECT_EQ(features[2].name, "bpf.cgroup_skb");
  EXPECT_EQ(features[3].name, "bpf.iter_task");
  for (const auto& feature : features) EXPECT_TRUE(feature.required) << feature.name;

  bool bpfUsable = libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_SOCKET_FILTER, nullptr) == 1;
  bool btf = fileExists(std::string(kVmlinuxBtfPath));
  // tp_btf (5.5) and task iterators (5.8) need only BTF on any kernel
  // recent enough for the rest of Atoll.
  EXPECT_EQ(features[0].status == FeatureStatus::Ok, bpfUsable && btf) << features[0].detail;
  EXPECT_EQ(features[3].status == FeatureStatus::Ok, bpfUsable && btf) << features[3].detail;
  EXPECT_EQ(features[1].status == FeatureStatus::Ok,
            libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, nullptr) == 1)
      << features[1].detail;
  EXPECT_EQ(features[2].status == FeatureStatus::Ok,
            path.has_value() && libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_CGROUP_SKB, nullptr) == 1)
      << features[2].detail;
  if (path) {
    EXPECT_EQ(scratchCgroupsLeft(*path), std::vector<std::string>{});
  }
}

TEST_F(ProbesKernelTest, Cgroup2MountMatchesTheFilesystemMagic) {
  auto location = locateCgroup2(kMountInfo);
  Feature mount = assessCgroup2Mount(location);
  std::optional<std::string> expected;
  for (const char* candidate : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
    struct statfs fs {};
    if (!expected && ::statfs(candidate, &fs) == 0 &&
        static_cast<unsigned long>(fs.f_type) == CGROUP2_SUPER_MAGIC)
      expected = candidate;
  }
  if (!expected) GTEST_SKIP() << "no cgroup2 at /sys/fs/cgroup or /sys/fs/cgroup/unified";
  ASSERT_TRUE(location) << location.error().message();
  EXPECT_EQ(location->path, *expected);
  EXPECT_EQ(mount.status, FeatureStatus::Ok);
}

TEST_F(ProbesKernelTest, ControllersVerdictMatchesTheControllersFile) {
  auto location = locateCgroup2(kMountInfo);
  if (!location) GTEST_SKIP() << "no cgroup2 mount: " << location.error().message();
  auto text = readFile(location->path + "/cgroup.controllers");
  ASSERT_TRUE(text) << text.error().message();
  auto available = wordsOf(*text);
  bool all = true;
  for (const char* needed : {"cpuset", "cpu", "memory", "io", "pids"})
    all = all && available.contains(needed);
  Feature controllers = probeControllers(location);
  EXPECT_TRUE(controllers.required);
  EXPECT_EQ(controllers.status, all ? FeatureStatus::Ok : FeatureStatus::Missing)
      << controllers.detail;
}

TEST_F(ProbesKernelTest, CpusetPartitionNeedsCpusetOnCgroup2AndLeavesNothingBehind) {
  auto location = locateCgroup2(kMountInfo);
  if (!location) GTEST_SKIP() << "no cgroup2 mount: " << location.error().message();
  auto available = readFile(location->path + "/cgroup.controllers");
  auto enabled = readFile(location->path + "/cgroup.subtree_control");
  ASSERT_TRUE(available && enabled);
  Feature partition = probeCpusetPartition(location);
  EXPECT_FALSE(partition.required);
  bool cpusetForChildren =
      wordsOf(*available).contains("cpuset") && wordsOf(*enabled).contains("cpuset");
  EXPECT_EQ(partition.status == FeatureStatus::Ok, cpusetForChildren) << partition.detail;
  EXPECT_EQ(scratchCgroupsLeft(location->path), std::vector<std::string>{});
}

// IORING_REGISTER_PROBE issued by hand, without liburing.
std::optional<std::set<int>> rawIoUringOpcodes() {
  io_uring_params params{};
  long fd = ::syscall(__NR_io_uring_setup, 4, &params);
  if (fd < 0) return std::nullopt;
  UniqueFd ring(static_cast<int>(fd));
  constexpr unsigned kOps = 256;
  std::vector<char> storage(sizeof(io_uring_probe) + kOps * sizeof(io_uring_probe_op));
  auto* probe = reinterpret_cast<io_uring_probe*>(storage.data());
  if (::syscall(__NR_io_uring_register, ring.get(), IORING_REGISTER_PROBE, probe, kOps) < 0)
    return std::set<int>{};
  std::set<int> out;
  for (int op = 0; op <= probe->last_op; ++op)
    if (probe->ops[op].flags & IO_URING_OP_SUPPORTED) out.insert(op);
  return out;
}

TEST_F(ProbesKernelTest, IoUringVerdictsMatchTheRawOpcodeProbe) {
  auto features = probeIoUring();
  ASSERT_EQ(features.size(), 2u);
  auto raw = rawIoUringOpcodes();
  if (!raw) {
    EXPECT_EQ(features[0].status, FeatureStatus::Missing) << features[0].detail;
    return;
  }
  bool required = true;
  bool optional = true;
  for (const auto& op : kIoUringOpcodes) {
    bool supported = raw->contains(op.opcode);
    (op.required ? required : optional) &= supported;
  }
  EXPECT_EQ(features[0].status, required ? FeatureStatus::Ok : FeatureStatus::Missing)
      << features[0].detail;
  EXPECT_EQ(features[1].status, optional ? FeatureStatus::Ok : FeatureStatus::Degraded)
      << features[1].detail;
}

// The userfaultfd features the kernel offers, asked directly.
std::optional<__u64> rawUffdFeatures() {
  long fd = ::syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
  if (fd < 0) fd = ::syscall(SYS_userfaultfd, O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  UniqueFd uffd(static_cast<int>(fd));
  uffdio_api api{};
  api.api = UFFD_API;
  if (::ioctl(uffd.get(), UFFDIO_API, &api) != 0) return std::nullopt;
  return static_cast<__u64>(api.features);
}

TEST_F(ProbesKernelTest, WriteProtectVerdictsMatchTheOfferedFeatures) {
  auto features = probeWriteProtectTracking();
  ASSERT_EQ(features.size(), 2u);
  EXPECT_EQ(features[0].name, "userfaultfd.wp_async");
  EXPECT_EQ(features[1].name, "pagemap_scan");
  auto offered = rawUffdFeatures();
  bool wpAsync = offered && (*offered & UFFD_FEATURE_WP_ASYNC) != 0;
  EXPECT_EQ(features[0].status == FeatureStatus::Ok, wpAsync) << features[0].detail;

  // PAGEMAP_SCAN over an empty range: ENOTTY on kernels without it.
  UniqueFd pagemap(::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(pagemap.valid());
  pm_scan_arg arg{};
  arg.size = sizeof arg;
  arg.category_mask = PAGE_IS_PRESENT;
  arg.return_mask = PAGE_IS_PRESENT;
  bool scanKnown = ::ioctl(pagemap.get(), PAGEMAP_SCAN, &arg) >= 0;
  EXPECT_EQ(features[1].status == FeatureStatus::Ok, wpAsync && scanKnown) << features[1].detail;
  for (const auto& feature : features) EXPECT_FALSE(feature.required) << feature.name;
}

TEST_F(ProbesKernelTest, SoftDirtyMatchesTheKernelConfig) {
  auto config = runningConfig();
  if (!config) GTEST_SKIP() << "the kernel publishes no configuration to compare with";
  auto option = config->find("CONFIG_MEM_SOFT_DIRTY");
  bool built = option != config->end() && option->second == "y";
  Feature softDirty = probeSoftDirty();
  EXPECT_FALSE(softDirty.required);
  EXPECT_EQ(softDirty.status, built ? FeatureStatus::Ok : FeatureStatus::Degraded)
      << softDirty.detail;
}

TEST_F(ProbesKernelTest, KernelTlsMatchesADirectTcpUlpAttempt) {
  UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(listener.valid());
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(listener.get(), 1), 0);
  ASSERT_EQ(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&address), &length), 0);
  UniqueFd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_EQ(::connect(client.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  bool ulp = ::setsockopt(client.get(), SOL_TCP, TCP_ULP, "tls", 3) == 0;

  Feature tls = probeKernelTls();
  EXPECT_FALSE(tls.required);
  if (ulp) {
    EXPECT_NE(tls.detail.find("TCP_ULP tls attached"), std::string::npos) << tls.detail;
  } else {
    EXPECT_EQ(tls.status, FeatureStatus::Degraded) << tls.detail;
  }
}

TEST_F(ProbesKernelTest, NumaNodeCountMatchesSysfs) {
  std::size_t nodes = 0;
  if (DIR* dir = ::opendir("/sys/devices/system/node")) {
    while (dirent* entry = ::readdir(dir)) {
      std::string name = entry->d_name;
      if (name.size() > 4 && name.starts_with("node") &&
          name.find_first_not_of("0123456789", 4) == std::string::npos)
        ++nodes;
    }
    ::closedir(dir);
  }
  Feature numa = probeNumaTopology();
  EXPECT_TRUE(numa.required);
  if (nodes == 0) {
    EXPECT_EQ(numa.status, FeatureStatus::Missing) << numa.detail;
    return;
  }
  ASSERT_EQ(numa.status, FeatureStatus::Ok) << numa.detail;
  std::string count = std::to_string(nodes) + (nodes == 1 ? " NUMA node," : " NUMA nodes,");
  EXPECT_TRUE(numa.detail.starts_with(count)) << numa.detail;
  EXPECT_EQ(numa.detail.find("single node") != std::string::npos, nodes == 1) << numa.detail;
}

TEST_F(ProbesKernelTest, LibvirtNeedsItsSocketAndAnswersInTime) {
  bool socketPresent =
      fileExists("/run/libvirt/libvirt-sock-ro") || fileExists("/run/libvirt/virtqemud-sock-ro");
  auto start = std::chrono::steady_clock::now();
  Feature libvirt = probeLibvirt(kDefaultLibvirtUri, std::chrono::milliseconds(2000));
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_FALSE(libvirt.required);
  EXPECT_LT(took, std::chrono::seconds(4));
  if (!socketPresent) {
    EXPECT_EQ(libvirt.status, FeatureStatus::Degraded) << libvirt.detail;
  }
  if (libvirt.status == FeatureStatus::Ok) {
    EXPECT_NE(libvirt.detail.find("libvirt "), std::string::npos) << libvirt.detail;
  }
}

// A daemon that accepts the connection and never answers must not hang the
// check: the probe gives up at its deadline.
TEST(LibvirtProbeTest, SilentDaemonTimesOut) {
  char directory[] = "/tmp/atoll-libvirt-XXXXXX";
  ASSERT_NE(::mkdtemp(directory), nullptr);
  std::string socketPath = std::string(directory) + "/silent.sock";
  UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(listener.valid());
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, socketPath.c_str(), sizeof address.sun_path - 1);
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(listener.get(), 4), 0);

  auto start = std::chrono::steady_clock::now();
  Feature libvirt =
      probeLibvirt("qemu+unix:///system?socket=" + socketPath, std::chrono::milliseconds(500));
  auto took = std::chrono::steady_clock::now() - start;
  listener.reset();
  ::unlink(socketPath.c_str());
  ::rmdir(directory);

  EXPECT_EQ(libvirt.status, FeatureStatus::Degraded) << libvirt.detail;
  EXPECT_NE(libvirt.detail.find("within 500 ms"), std::string::npos) << libvirt.detail;
  EXPECT_LT(took, std::chrono::seconds(3));
}

TEST_F(ProbesKernelTest, KernelConfigIsComparedWhenTheKernelPublishesIt) {
  Feature config = probeKernelConfig(kernelRelease());
  EXPECT_TRUE(config.required);
  auto text = readRunningKernelConfig(kernelRelease());
  ASSERT_TRUE(text) << text.error().message();
  if (!*text) {
    EXPECT_EQ(config.status, FeatureStatus::Degraded) << config.detail;
    return;
  }
  EXPECT_NE(config.detail.find("checked against " + (*text)->path), std::string::npos)
      << config.detail;
  EXPECT_EQ(config.status == FeatureStatus::Missing,
            config.detail.find("required unmet") != std::string::npos)
      << config.detail;
}

TEST_F(ProbesKernelTest, FullCheckReportsEveryFeatureInOrderWithItsRequirement) {
  CheckOptions options;
  options.libvirtTimeout = std::chrono::milliseconds(1000);
  Report report = runCapabilityCheck(options);
  EXPECT_EQ(report.kernel, kernelRelease());
  ASSERT_EQ(report.features.size(), kFeatureNames.size());
  const std::set<std::string> required = {
      "btf",           "bpf.tp_btf",          "bpf.ringbuf", "bpf.cgroup_skb", "bpf.iter_task",
      "cgroup2.mount", "cgroup2.controllers", "io_uring",    "numa.topology",  "kernel_config"};
  for (std::size_t i = 0; i < kFeatureNames.size(); ++i) {
    const Feature& feature = report.features[i];
    EXPECT_EQ(feature.name, kFeatureNames[i]);
    EXPECT_EQ(feature.required, required.contains(feature.name)) << feature.name;
    EXPECT_FALSE(feature.detail.empty()) << feature.name;
    if (feature.status != FeatureStatus::Ok) {
      EXPECT_FALSE(feature.fix.empty()) << feature.name;
    }
    if (!feature.required) {
      EXPECT_NE(feature.status, FeatureStatus::Missing) << feature.name;
    }
  }
}

}  // namespace
}  // namespace Atoll::capability
