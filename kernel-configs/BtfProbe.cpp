#include "kernel-configs/BtfProbe.h"

#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <memory>
#include <string>

#include "util/Error.h"

namespace Atoll::capability {

namespace {

constexpr const char* kFeature = "btf";
constexpr const char* kFix =
    "CONFIG_DEBUG_INFO_BTF=y (the kernel build needs pahole, Debian package dwarves)";

std::string mebibytes(off_t bytes) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return buffer;
}

}  // namespace

Feature probeBtf() {
  std::string path(kVmlinuxBtfPath);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return Feature::absent(kFeature, true, Error::fromErrno("stat", path, errno).message(), kFix);
  std::unique_ptr<btf, decltype(&btf__free)> parsed(btf__parse(path.c_str(), nullptr), &btf__free);
  if (!parsed)
    return Feature::absent(kFeature, true, Error::fromErrno("btf__parse", path, errno).message(),
                           kFix);
  if (btf__find_by_name_kind(parsed.get(), "task_struct", BTF_KIND_STRUCT) < 0)
    return Feature::absent(kFeature, true, path + " parses but has no struct task_struct", kFix);
  return Feature::ok(kFeature, true,
                     path + ": " + std::to_string(btf__type_cnt(parsed.get())) + " types, " +
                         mebibytes(st.st_size));
}

}  // namespace Atoll::capability
