#include "kernel-configs/DirtyPageProbes.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <future>
#include <set>
#include <string>

#include "kernel-configs/DirtyTrackingUapi.h"
#include "util/Fs.h"
#include "util/Result.h"
#include "util/UniqueFd.h"

namespace Atoll::capability {

namespace {

constexpr const char* kWpAsyncFeature = "userfaultfd.wp_async";
constexpr const char* kPagemapScanFeature = "pagemap_scan";
constexpr const char* kSoftDirtyFeature = "soft_dirty";

constexpr const char* kWpAsyncFix =
    "Linux 6.7 or later with CONFIG_USERFAULTFD=y and CONFIG_PTE_MARKER_UFFD_WP=y; run as root "
    "or set vm.unprivileged_userfaultfd=1";
constexpr const char* kPagemapScanFix =
    "Linux 6.7 or later (PAGEMAP_SCAN) with CONFIG_USERFAULTFD=y and CONFIG_PTE_MARKER_UFFD_WP=y";
constexpr const char* kSoftDirtyFix =
    "CONFIG_MEM_SOFT_DIRTY=y (depends on CONFIG_CHECKPOINT_RESTORE=y)";

constexpr std::size_t kProbePages = 16;
constexpr std::array<std::size_t, 2> kFirstWrites = {3, 9};
constexpr std::size_t kSecondWrite = 5;
// A write to a page protected without WP_ASYNC would wait for a fault
// handler that never comes; closing the userfaultfd releases it.
constexpr auto kWriteDeadline = std::chrono::seconds(2);

std::string hex(unsigned long long value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "0x%llx", value);
  return buffer;
}

std::size_t pageSize() {
  return static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

// A private anonymous mapping, unmapped on destruction.
class ProbeMapping {
 public:
  static Result<ProbeMapping> create(std::size_t pages) {
    std::size_t bytes = pages * pageSize();
    void* base = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
      return Error::fromErrno("mmap", "anonymous", errno, std::to_string(bytes));
    // Keep base pages: a huge page would blur per-page answers.
    (void)::madvise(base, bytes, MADV_NOHUGEPAGE);
    return ProbeMapping(static_cast<char*>(base), pages);
  }
  ProbeMapping(ProbeMapping&& other) noexcept
      : base_(std::exchange(other.base_, nullptr)), pages_(other.pages_) {}
  ProbeMapping(const ProbeMapping&) = delete;
  ProbeMapping& operator=(const ProbeMapping&) = delete;
  ProbeMapping& operator=(ProbeMapping&&) = delete;
  ~ProbeMapping() {
    if (base_ != nullptr) ::munmap(base_, bytes());
  }

  char* page(std::size_t index) const { return base_ + index * pageSize(); }
  std::size_t pages() const { return pages_; }
  std::size_t bytes() const { return pages_ * pageSize(); }
  __u64 start() const { return reinterpret_cast<__u64>(base_); }
  void write(std::size_t index, char value) const {
    *reinterpret_cast<volatile char*>(page(index)) = value;
  }

 private:
  ProbeMapping(char* base, std::size_t pages) : base_(base), pages_(pages) {}
  char* base_;
  std::size_t pages_;
};

Result<UniqueFd> openPagemap() {
  int fd = ::open(std::string(kPagemapPath).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error::fromErrno("open", std::string(kPagemapPath), errno);
  return UniqueFd(fd);
}

Result<std::vector<__u64>> readPagemap(int pagemapFd, const ProbeMapping& mapping) {
  std::vector<__u64> entries(mapping.pages());
  off_t offset = static_cast<off_t>(mapping.start() / pageSize() * sizeof(__u64));
  std::size_t want = entries.size() * sizeof(__u64);
  ssize_t got = ::pread(pagemapFd, entries.data(), want, offset);
  if (got < 0) return Error::fromErrno("read", std::string(kPagemapPath), errno);
  if (static_cast<std::size_t>(got) != want)
    return Error::invalid("read", std::string(kPagemapPath), std::to_string(got), "short read");
  return entries;
}

Result<UniqueFd> openUserfaultfd() {
  // User-mode-only faults are allowed without privilege on kernels that
  // restrict userfaultfd; older kernels reject the flag.
  long fd = ::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
  if (fd < 0 && errno == EINVAL) fd = ::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return Error::fromErrno("userfaultfd", "syscall", errno);
  return UniqueFd(static_cast<int>(fd));
}

// UFFDIO_API may be issued once per descriptor; returns the features the
// kernel grants (all it supports when asked for none).
Result<__u64> negotiate(int uffd, __u64 features) {
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = features;
  if (::ioctl(uffd, UFFDIO_API, &api) != 0)
    return Error::fromErrno("ioctl UFFDIO_API", "userfaultfd", errno, hex(features));
  return static_cast<__u64>(api.features);
}

// Writes the pages on another thread so that a write the kernel does not
// resolve cannot hang the check.
bool writeWithinDeadline(const ProbeMapping& mapping, const std::vector<std::size_t>& pages,
                         UniqueFd& uffd) {
  auto done = std::async(std::launch::async, [&mapping, &pages] {
    for (std::size_t index : pages) mapping.write(index, 2);
  });
  if (done.wait_for(kWriteDeadline) == std::future_status::ready) return true;
  uffd.reset();
  done.wait();
  return false;
}

std::string pageList(const std::set<std::size_t>& pages) {
  std::string out;
  for (std::size_t page : pages) out += (out.empty() ? "" : ",") + std::to_string(page);
  return out.empty() ? "none" : out;
}

// Pages whose pagemap entry lacks the uffd-wp bit.
std::set<std::size_t> unprotectedPages(const std::vector<__u64>& entries) {
  std::set<std::size_t> out;
  for (std::size_t i = 0; i < entries.size(); ++i)
    if ((entries[i] & kPagemapUffdWpBit) == 0) out.insert(i);
  return out;
}

// PAGEMAP_SCAN for written pages, re-protecting them; returns page indexes.
Result<std::set<std::size_t>> scanWritten(int pagemapFd, const ProbeMapping& mapping) {
  std::array<page_region, kProbePages> regions{};
  pm_scan_arg arg{};
  arg.size = sizeof arg;
  arg.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC;
  arg.start = mapping.start();
  arg.end = mapping.start() + mapping.bytes();
  arg.vec = reinterpret_cast<__u64>(regions.data());
  arg.vec_len = regions.size();
  arg.category_mask = PAGE_IS_WRITTEN;
  arg.return_mask = PAGE_IS_WRITTEN;
  int count = ::ioctl(pagemapFd, PAGEMAP_SCAN, &arg);
  if (count < 0) return Error::fromErrno("ioctl PAGEMAP_SCAN", std::string(kPagemapPath), errno);
  std::set<std::size_t> pages;
  for (int i = 0; i < count; ++i)
    for (__u64 address = regions[i].start; address < regions[i].end; address += pageSize())
      pages.insert((address - mapping.start()) / pageSize());
  return pages;
}

// Whether the kernel knows PAGEMAP_SCAN at all, asked with a plain
// present-page query that needs no userfaultfd.
bool pagemapScanKnown(int pagemapFd, const ProbeMapping& mapping) {
  std::array<page_region, kProbePages> regions{};
  pm_scan_arg arg{};
  arg.size = sizeof arg;
  arg.start = mapping.start();
  arg.end = mapping.start() + mapping.bytes();
  arg.vec = reinterpret_cast<__u64>(regions.data());
  arg.vec_len = regions.size();
  arg.category_mask = PAGE_IS_PRESENT;
  arg.return_mask = PAGE_IS_PRESENT;
  return ::ioctl(pagemapFd, PAGEMAP_SCAN, &arg) >= 0;
}

std::vector<Feature> bothAbsent(const std::string& wpDetail, const std::string& scanDetail) {
  return {Feature::absent(kWpAsyncFeature, false, wpDetail, kWpAsyncFix),
          Feature::absent(kPagemapScanFeature, false, scanDetail, kPagemapScanFix)};
}

Feature assessScanWithoutWpAsync(int pagemapFd, const ProbeMapping& mapping) {
  if (pagemapScanKnown(pagemapFd, mapping))
    return Feature::degraded(kPagemapScanFeature, false,
                             "PAGEMAP_SCAN answers, but written-page tracking needs userfaultfd "
                             "WP_ASYNC, which is unavailable",
                             kWpAsyncFix);
  return Feature::absent(kPagemapScanFeature, false, "PAGEMAP_SCAN ioctl not supported",
                         kPagemapScanFix);
}

}  // namespace

std::vector<Feature> probeWriteProtectTracking() {
  auto mapping = ProbeMapping::create(kProbePages);
  if (!mapping) return bothAbsent(mapping.error().message(), mapping.error().message());
  for (std::size_t i = 0; i < mapping->pages(); ++i) mapping->write(i, 1);
  auto pagemap = openPagemap();
  if (!pagemap) return bothAbsent(pagemap.error().message(), pagemap.error().message());

  auto query = openUserfaultfd();
  if (!query) {
    Feature scan = assessScanWithoutWpAsync(pagemap->get(), *mapping);
    return {Feature::absent(kWpAsyncFeature, false, query.error().message(), kWpAsyncFix), scan};
  }
  auto supported = negotiate(query->get(), 0);
  if (!supported) {
    Feature scan = assessScanWithoutWpAsync(pagemap->get(), *mapping);
    return {Feature::absent(kWpAsyncFeature, false, supported.error().message(), kWpAsyncFix),
            scan};
  }
  if ((*supported & UFFD_FEATURE_WP_ASYNC) == 0) {
    Feature scan = assessScanWithoutWpAsync(pagemap->get(), *mapping);
    return {Feature::absent(kWpAsyncFeature, false,
                            "userfaultfd offers features " + hex(*supported) + " without WP_ASYNC",
                            kWpAsyncFix),
            scan};
  }

  auto uffd = openUserfaultfd();
  if (!uffd) return bothAbsent(uffd.error().message(), "needs userfaultfd WP_ASYNC");
  auto granted = negotiate(uffd->get(), UFFD_FEATURE_WP_ASYNC);
  if (!granted) return bothAbsent(granted.error().message(), "needs userfaultfd WP_ASYNC");

  uffdio_register reg{};
  reg.range.start = mapping->start();
  reg.range.len = mapping->bytes();
  reg.mode = UFFDIO_REGISTER_MODE_WP;
  if (::ioctl(uffd->get(), UFFDIO_REGISTER, &reg) != 0)
    return bothAbsent(
        Error::fromErrno("ioctl UFFDIO_REGISTER", "userfaultfd", errno, "MODE_WP").message(),
        "needs userfaultfd WP_ASYNC");
  uffdio_writeprotect protect{};
  protect.range = reg.range;
  protect.mode = UFFDIO_WRITEPROTECT_MODE_WP;
  if (::ioctl(uffd->get(), UFFDIO_WRITEPROTECT, &protect) != 0)
    return bothAbsent(
        Error::fromErrno("ioctl UFFDIO_WRITEPROTECT", "userfaultfd", errno, "MODE_WP").message(),
        "needs userfaultfd WP_ASYNC");

  auto before = readPagemap(pagemap->get(), *mapping);
  if (!before) return bothAbsent(before.error().message(), "needs userfaultfd WP_ASYNC");
  if (auto open = unprotectedPages(*before); !open.empty())
    return bothAbsent("pages " + pageList(open) + " lack the uffd-wp bit after UFFDIO_WRITEPROTECT",
                      "needs userfaultfd WP_ASYNC");

  std::vector<std::size_t> firstWrites(kFirstWrites.begin(), kFirstWrites.end());
  if (!writeWithinDeadline(*mapping, firstWrites, *uffd))
    return bothAbsent(
        "a write to a write-protected page blocked instead of resolving "
        "asynchronously",
        "needs userfaultfd WP_ASYNC");
  auto after = readPagemap(pagemap->get(), *mapping);
  if (!after) return bothAbsent(after.error().message(), "needs userfaultfd WP_ASYNC");
  std::set<std::size_t> expected(kFirstWrites.begin(), kFirstWrites.end());
  if (auto open = unprotectedPages(*after); open != expected)
    return bothAbsent("after writing pages " + pageList(expected) + ", pagemap shows pages " +
                          pageList(open) + " unprotected",
                      "needs userfaultfd WP_ASYNC");
  Feature wpAsync = Feature::ok(
      kWpAsyncFeature, false,
      "writes to " + std::to_string(expected.size()) + " of " + std::to_string(kProbePages) +
          " write-protected pages resolved without a fault handler; pagemap shows exactly those "
          "pages unprotected");

  auto absentScan = [&](const std::string& detail) {
    return std::vector<Feature>{
        wpAsync, Feature::absent(kPagemapScanFeature, false, detail, kPagemapScanFix)};
  };
  auto first = scanWritten(pagemap->get(), *mapping);
  if (!first) return absentScan(first.error().message());
  if (*first != expected)
    return absentScan("PAGEMAP_SCAN reported pages " + pageList(*first) + ", written were " +
                      pageList(expected));
  auto rescan = scanWritten(pagemap->get(), *mapping);
  if (!rescan) return absentScan(rescan.error().message());
  if (!rescan->empty())
    return absentScan("PAGEMAP_SCAN did not re-protect pages " + pageList(*rescan));
  if (!writeWithinDeadline(*mapping, {kSecondWrite}, *uffd))
    return absentScan("a write to a page re-protected by PAGEMAP_SCAN blocked");
  auto second = scanWritten(pagemap->get(), *mapping);
  if (!second) return absentScan(second.error().message());
  if (*second != std::set<std::size_t>{kSecondWrite})
    return absentScan("after re-protection and a write to page " + std::to_string(kSecondWrite) +
                      ", PAGEMAP_SCAN reported pages " + pageList(*second));
  return {wpAsync,
          Feature::ok(kPagemapScanFeature, false,
                      "reported exactly the written pages (" + pageList(expected) + ", then " +
                          std::to_string(kSecondWrite) + ") and re-protected them")};
}

Feature probeSoftDirty() {
  auto mapping = ProbeMapping::create(1);
  if (!mapping)
    return Feature::absent(kSoftDirtyFeature, false, mapping.error().message(), kSoftDirtyFix);
  mapping->write(0, 1);
  auto pagemap = openPagemap();
  if (!pagemap)
    return Feature::absent(kSoftDirtyFeature, false, pagemap.error().message(), kSoftDirtyFix);
  auto proc = Dir::open(std::string(kProcSelfPath));
  if (!proc)
    return Feature::absent(kSoftDirtyFeature, false, proc.error().message(), kSoftDirtyFix);
  if (auto cleared = proc->writeFile(kClearRefsFile, kClearSoftDirtyValue); !cleared)
    return Feature::absent(kSoftDirtyFeature, false, cleared.error().message(), kSoftDirtyFix);
  auto clean = readPagemap(pagemap->get(), *mapping);
  if (!clean)
    return Feature::absent(kSoftDirtyFeature, false, clean.error().message(), kSoftDirtyFix);
  if (((*clean)[0] & kPagemapSoftDirtyBit) != 0)
    return Feature::absent(kSoftDirtyFeature, false,
                           "bit 55 of the pagemap entry stayed set after clear_refs " +
                               std::string(kClearSoftDirtyValue),
                           kSoftDirtyFix);
  mapping->write(0, 2);
  auto dirty = readPagemap(pagemap->get(), *mapping);
  if (!dirty)
    return Feature::absent(kSoftDirtyFeature, false, dirty.error().message(), kSoftDirtyFix);
  if (((*dirty)[0] & kPagemapSoftDirtyBit) == 0)
    return Feature::absent(kSoftDirtyFeature, false,
                           "clear_refs accepts " + std::string(kClearSoftDirtyValue) +
                               ", but bit 55 of the pagemap entry stays clear after a write",
                           kSoftDirtyFix);
  return Feature::ok(kSoftDirtyFeature, false,
                     "bit 55 of the pagemap entry cleared by clear_refs and set again by a write");
}

}  // namespace Atoll::capability
