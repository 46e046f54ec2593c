#include "kernel-configs/KernelConfigProbe.h"

#include <sys/stat.h>
#include <zlib.h>

#include <cerrno>
#include <memory>

#include "kernel-configs/AtollConfigFragment.h"
#include "util/Fs.h"

namespace Atoll::capability {

namespace {

constexpr const char* kFeature = "kernel_config";
constexpr const char* kMergeFix =
    "rebuild the kernel with kernel-configs/atoll.config merged (scripts/kconfig/merge_config.sh "
    ".config atoll.config)";

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

std::string describeAll(const std::vector<OptionMismatch>& mismatches) {
  std::string out;
  for (const auto& mismatch : mismatches) out += (out.empty() ? "" : ", ") + mismatch.describe();
  return out;
}

std::string namesOf(const std::vector<OptionMismatch>& mismatches) {
  std::string out;
  for (const auto& mismatch : mismatches) {
    const auto& wanted = mismatch.wanted;
    out += (out.empty() ? "" : " ") + wanted.name + "=" + wanted.value;
  }
  return out;
}

}  // namespace

Result<std::string> readGzipFile(const std::string& path) {
  errno = 0;
  std::unique_ptr<gzFile_s, decltype(&gzclose)> file(gzopen(path.c_str(), "rb"), &gzclose);
  if (!file) return Error::fromErrno("gzopen", path, errno != 0 ? errno : ENOMEM);
  std::string out;
  char buffer[16384];
  for (;;) {
    int n = gzread(file.get(), buffer, sizeof buffer);
    if (n < 0) {
      int code = 0;
      const char* message = gzerror(file.get(), &code);
      return Error::invalid("gzread", path, {}, message != nullptr ? message : "zlib error");
    }
    if (n == 0) break;
    out.append(buffer, static_cast<std::size_t>(n));
  }
  return out;
}

Result<std::optional<KernelConfigText>> readRunningKernelConfig(std::string_view release) {
  std::string proc(kProcConfigGzPath);
  if (exists(proc)) {
    auto text = readGzipFile(proc);
    if (!text) return text.error();
    return std::optional<KernelConfigText>(KernelConfigText{proc, std::move(*text)});
  }
  std::string boot = std::string(kBootConfigPrefix) + std::string(release);
  if (exists(boot)) {
    auto text = readFile(boot);
    if (!text) return text.error();
    return std::optional<KernelConfigText>(KernelConfigText{boot, std::move(*text)});
  }
  return std::optional<KernelConfigText>();
}

Feature assessKernelConfig(const ConfigComparison& comparison, const std::string& source) {
  std::string checked =
      std::to_string(comparison.checked) + " options of atoll.config checked against " + source;
  if (!comparison.requiredUnmet.empty()) {
    std::string detail = checked + "; required unmet: " + describeAll(comparison.requiredUnmet);
    if (!comparison.recommendedUnmet.empty())
      detail += "; recommended unmet: " + describeAll(comparison.recommendedUnmet);
    return Feature::absent(kFeature, true, detail,
                           namesOf(comparison.requiredUnmet) + "; " + kMergeFix);
  }
  if (!comparison.recommendedUnmet.empty())
    return Feature::degraded(kFeature, true,
                             checked + "; required all met; recommended unmet: " +
                                 describeAll(comparison.recommendedUnmet),
                             namesOf(comparison.recommendedUnmet) + "; " + kMergeFix);
  return Feature::ok(kFeature, true, checked + "; all met");
}

Feature probeKernelConfig(std::string_view release) {
  auto fragment = parseFragment(atollConfigFragment(), std::string(kAtollConfigFragmentName));
  if (!fragment)
    return Feature::absent(kFeature, true, fragment.error().message(), "rebuild atoll");
  auto config = readRunningKernelConfig(release);
  if (!config)
    return Feature::degraded(kFeature, true, config.error().message(),
                             "make the kernel configuration readable");
  if (!*config)
    return Feature::degraded(kFeature, true,
                             "no kernel configuration at " + std::string(kProcConfigGzPath) +
                                 " or " + std::string(kBootConfigPrefix) + std::string(release) +
                                 "; the other probes test the features directly",
                             "CONFIG_IKCONFIG_PROC=y, or install the kernel's config in /boot");
  auto parsed = parseKernelConfig((*config)->text, (*config)->path);
  if (!parsed)
    return Feature::degraded(kFeature, true, parsed.error().message(),
                             "the kernel configuration is not in .config format");
  return assessKernelConfig(compareConfig(*fragment, *parsed), (*config)->path);
}

}  // namespace Atoll::capability
