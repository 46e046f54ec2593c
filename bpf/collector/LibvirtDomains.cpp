#include "bpf/collector/LibvirtDomains.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <memory>

#include "util/Fs.h"

namespace Atoll::telemetry {

namespace {

// libvirt prints every error to stderr by default; we report our own.
void quietLibvirtErrors(void*, virErrorPtr) {}

std::string lastLibvirtError() {
  virErrorPtr err = virGetLastError();
  return err && err->message ? err->message : "unknown libvirt error";
}

// The QEMU driver writes each running domain's QEMU pid here.
constexpr const char* kQemuPidDir = "/run/libvirt/qemu/";

}  // namespace

std::string unifiedCgroupPath(std::string_view text) {
  while (!text.empty()) {
    size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    if (line.substr(0, 3) == "0::") {
      std::string_view path = trim(line.substr(3));
      while (!path.empty() && path.front() == '/') path.remove_prefix(1);
      return std::string(path);
    }
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return {};
}

std::string domainScopeOf(std::string_view path) {
  for (std::string_view suffix :
       {std::string_view("/libvirt/emulator"), std::string_view("/emulator")}) {
    if (path.size() > suffix.size() && path.substr(path.size() - suffix.size()) == suffix)
      return std::string(path.substr(0, path.size() - suffix.size()));
  }
  return std::string(path);
}

Result<std::vector<LibvirtDomain>> listLibvirtDomains(const std::string& uri) {
  virSetErrorFunc(nullptr, quietLibvirtErrors);
  std::unique_ptr<virConnect, decltype(&virConnectClose)> conn(virConnectOpenReadOnly(uri.c_str()),
                                                               &virConnectClose);
  if (!conn) return Error::invalid("virConnectOpenReadOnly", uri, "", lastLibvirtError());
  virDomainPtr* domains = nullptr;
  int count = virConnectListAllDomains(conn.get(), &domains, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
  if (count < 0) return Error::invalid("virConnectListAllDomains", uri, "", lastLibvirtError());
  std::vector<LibvirtDomain> out;
  for (int i = 0; i < count; ++i) {
    LibvirtDomain domain;
    if (const char* name = virDomainGetName(domains[i])) domain.name = name;
    char uuid[VIR_UUID_STRING_BUFLEN] = {};
    if (virDomainGetUUIDString(domains[i], uuid) == 0) domain.uuid = uuid;
    virDomainFree(domains[i]);
    auto pidText = readFile(kQemuPidDir + domain.name + ".pid");
    if (!pidText) continue;  // not a QEMU-driver domain, or it just stopped
    domain.pid = std::atoi(std::string(trim(*pidText)).c_str());
    if (domain.pid <= 0) continue;
    auto cgroups = readFile("/proc/" + std::to_string(domain.pid) + "/cgroup");
    if (!cgroups) continue;
    domain.cgroupPath = domainScopeOf(unifiedCgroupPath(*cgroups));
    if (domain.cgroupPath.empty()) continue;
    out.push_back(std::move(domain));
  }
  free(domains);
  return out;
}

}  // namespace Atoll::telemetry
