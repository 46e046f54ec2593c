#include "numa/LibvirtPinner.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <cstdlib>
#include <cstring>

#include "numa/CpuSet.h"
#include "util/Fs.h"

namespace Atoll::numa {

namespace {

std::string lastLibvirtError() {
  const virError* error = virGetLastError();
  return error != nullptr && error->message != nullptr ? error->message : "unknown libvirt error";
}

Error libvirtError(const std::string& call, const std::string& domain, std::string value = {}) {
  return Error::invalid(call, domain, std::move(value), lastLibvirtError());
}

// libvirt prints its errors to stderr unless a handler takes them; they are
// returned as values here instead.
void ignoreLibvirtError(void*, virErrorPtr) {}

// libvirt's CPU bitmap; CPUs the host does not have are an error naming them.
Result<std::vector<unsigned char>> toCpuMap(const CpuList& cpus, unsigned hostCpus,
                                            const std::string& domain) {
  if (cpus.empty()) return Error::invalid("pin VM", domain, "", "an empty CPU set");
  std::vector<unsigned char> map(VIR_CPU_MAPLEN(hostCpus), 0);
  for (unsigned cpu : cpus) {
    if (cpu >= hostCpus)
      return Error::invalid("pin VM", domain, std::to_string(cpu),
                            "CPU " + std::to_string(cpu) + " does not exist (libvirt sees " +
                                std::to_string(hostCpus) + " host CPUs)");
    map[cpu / 8] |= static_cast<unsigned char>(1u << (cpu % 8));
  }
  return map;
}

CpuList fromCpuMap(const unsigned char* map, int mapLength, unsigned hostCpus) {
  CpuList cpus;
  for (unsigned cpu = 0; cpu < hostCpus && cpu / 8 < unsigned(mapLength); ++cpu)
    if (map[cpu / 8] & (1u << (cpu % 8))) cpus.push_back(cpu);
  return cpus;
}

struct DomainHandle {
  explicit DomainHandle(virDomainPtr domain) : ptr(domain) {}
  ~DomainHandle() {
    if (ptr != nullptr) virDomainFree(ptr);
  }
  DomainHandle(const DomainHandle&) = delete;
  DomainHandle& operator=(const DomainHandle&) = delete;
  virDomainPtr ptr;
};

// Frees the strings libvirt filled typed parameters with, on every return.
struct TypedParamsCleared {
  TypedParamsCleared(virTypedParameterPtr params, int count) : params(params), count(count) {}
  ~TypedParamsCleared() { virTypedParamsClear(params, count); }
  TypedParamsCleared(const TypedParamsCleared&) = delete;
  TypedParamsCleared& operator=(const TypedParamsCleared&) = delete;
  virTypedParameterPtr params;
  int count;
};

// Live for a running domain, plus its persistent definition when it has one.
Result<unsigned> affectFlags(virDomainPtr domain, const std::string& name) {
  int active = virDomainIsActive(domain);
  int persistent = virDomainIsPersistent(domain);
  if (active < 0 || persistent < 0) return libvirtError("virDomainIsActive", name);
  unsigned flags = 0;
  if (active == 1) flags |= VIR_DOMAIN_AFFECT_LIVE;
  if (persistent == 1) flags |= VIR_DOMAIN_AFFECT_CONFIG;
  return flags;
}

}  // namespace

std::string metadataElementText(std::string_view xml) {
  xml = trim(xml);
  std::size_t open = xml.find('>');
  if (open == std::string_view::npos || (open > 0 && xml[open - 1] == '/')) return {};
  std::size_t close = xml.rfind('<');
  if (close == std::string_view::npos || close <= open) return {};
  return std::string(trim(xml.substr(open + 1, close - open - 1)));
}

struct LibvirtPinner::Connection {
  explicit Connection(virConnectPtr connection) : ptr(connection) {}
  ~Connection() {
    if (ptr != nullptr) virConnectClose(ptr);
  }
  virConnectPtr ptr;

  Result<std::unique_ptr<DomainHandle>> domain(const std::string& name) const {
    virDomainPtr found = virDomainLookupByName(ptr, name.c_str());
    if (found == nullptr) {
      const virError* error = virGetLastError();
      if (error != nullptr && error->code == VIR_ERR_NO_DOMAIN)
        return Error::invalid("pin VM", name, name, "no such libvirt domain");
      return libvirtError("virDomainLookupByName", name, name);
    }
    return std::make_unique<DomainHandle>(found);
  }
};

LibvirtPinner::LibvirtPinner(std::string uri, std::unique_ptr<Connection> connection,
                             unsigned hostCpus)
    : uri_(std::move(uri)), connection_(std::move(connection)), hostCpus_(hostCpus) {}

LibvirtPinner::~LibvirtPinner() = default;

Result<std::unique_ptr<LibvirtPinner>> LibvirtPinner::connect(const std::string& uri) {
  virSetErrorFunc(nullptr, ignoreLibvirtError);
  virConnectPtr raw = virConnectOpen(uri.c_str());
  if (raw == nullptr)
    return Error::invalid("virConnectOpen", uri, uri,
                          lastLibvirtError() + " (is libvirtd running?)");
  virConnSetErrorFunc(raw, nullptr, ignoreLibvirtError);
  auto connection = std::make_unique<Connection>(raw);
  int hostCpus = virNodeGetCPUMap(raw, nullptr, nullptr, 0);
  if (hostCpus <= 0) return libvirtError("virNodeGetCPUMap", uri);
  return std::unique_ptr<LibvirtPinner>(
      new LibvirtPinner(uri, std::move(connection), unsigned(hostCpus)));
}

bool LibvirtPinner::connected() const {
  return virConnectIsAlive(connection_->ptr) == 1;
}

Result<std::vector<std::string>> LibvirtPinner::runningDomains() const {
  virDomainPtr* domains = nullptr;
  int count = virConnectListAllDomains(connection_->ptr, &domains, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
  if (count < 0) return libvirtError("virConnectListAllDomains", uri_);
  std::vector<std::string> names;
  for (int i = 0; i < count; ++i) {
    if (const char* name = virDomainGetName(domains[i])) names.emplace_back(name);
    virDomainFree(domains[i]);
  }
  std::free(domains);
  return names;
}

Result<std::optional<std::string>> LibvirtPinner::metadata(const std::string& domain,
                                                           const std::string& uri) const {
  auto handle = connection_->domain(domain);
  if (!handle) return handle.error();
  char* xml = virDomainGetMetadata(handle.value()->ptr, VIR_DOMAIN_METADATA_ELEMENT, uri.c_str(),
                                   VIR_DOMAIN_AFFECT_CURRENT);
  if (xml == nullptr) {
    const virError* error = virGetLastError();
    if (error != nullptr && error->code == VIR_ERR_NO_DOMAIN_METADATA)
      return std::optional<std::string>();
    return libvirtError("virDomainGetMetadata", domain, uri);
  }
  std::string text = metadataElementText(xml);
  std::free(xml);
  return std::optional<std::string>(std::move(text));
}

Result<DomainPinning> LibvirtPinner::pinning(const std::string& domain) const {
  auto handle = connection_->domain(domain);
  if (!handle) return handle.error();
  virDomainPtr dom = handle.value()->ptr;
  DomainPinning out;
  const int mapLength = VIR_CPU_MAPLEN(hostCpus_);

  int vcpus = virDomainGetVcpusFlags(dom, VIR_DOMAIN_AFFECT_CURRENT);
  if (vcpus < 0) return libvirtError("virDomainGetVcpusFlags", domain);
  std::vector<unsigned char> maps(std::size_t(vcpus) * std::size_t(mapLength), 0);
  int pinned =
      virDomainGetVcpuPinInfo(dom, vcpus, maps.data(), mapLength, VIR_DOMAIN_AFFECT_CURRENT);
  if (pinned < 0) return libvirtError("virDomainGetVcpuPinInfo", domain);
  for (int vcpu = 0; vcpu < pinned; ++vcpu)
    out.vcpus.push_back(
        fromCpuMap(VIR_GET_CPUMAP(maps.data(), mapLength, vcpu), mapLength, hostCpus_));

  std::vector<unsigned char> emulator(std::size_t(mapLength), 0);
  if (virDomainGetEmulatorPinInfo(dom, emulator.data(), mapLength, VIR_DOMAIN_AFFECT_CURRENT) < 0)
    return libvirtError("virDomainGetEmulatorPinInfo", domain);
  out.emulator = fromCpuMap(emulator.data(), mapLength, hostCpus_);

  virDomainIOThreadInfoPtr* iothreads = nullptr;
  int iothreadCount = virDomainGetIOThreadInfo(dom, &iothreads, VIR_DOMAIN_AFFECT_CURRENT);
  if (iothreadCount < 0) return libvirtError("virDomainGetIOThreadInfo", domain);
  for (int i = 0; i < iothreadCount; ++i) {
    out.iothreads.push_back({iothreads[i]->iothread_id,
                             fromCpuMap(iothreads[i]->cpumap, iothreads[i]->cpumaplen, hostCpus_)});
    virDomainIOThreadInfoFree(iothreads[i]);
  }
  std::free(iothreads);

  virTypedParameterPtr params = nullptr;
  int paramCount = 0;
  if (virDomainGetNumaParameters(dom, nullptr, &paramCount, VIR_DOMAIN_AFFECT_CURRENT) < 0)
    return libvirtError("virDomainGetNumaParameters", domain);
  std::vector<virTypedParameter> values(static_cast<std::size_t>(paramCount));
  params = values.data();
  if (paramCount > 0 &&
      virDomainGetNumaParameters(dom, params, &paramCount, VIR_DOMAIN_AFFECT_CURRENT) < 0)
    return libvirtError("virDomainGetNumaParameters", domain);
  // Cleared on every return: a nodeset that does not parse returns early.
  TypedParamsCleared cleared(params, paramCount);
  for (int i = 0; i < paramCount; ++i) {
    if (std::strcmp(params[i].field, VIR_DOMAIN_NUMA_NODESET) == 0 &&
        params[i].type == VIR_TYPED_PARAM_STRING && params[i].value.s != nullptr) {
      auto nodes = parseCpuList(params[i].value.s, domain + " numatune nodeset");
      if (!nodes) return nodes.error();
      out.memoryNodes = *nodes;
    } else if (std::strcmp(params[i].field, VIR_DOMAIN_NUMA_MODE) == 0 &&
               params[i].type == VIR_TYPED_PARAM_INT) {
      switch (params[i].value.i) {
        case VIR_DOMAIN_NUMATUNE_MEM_STRICT:
          out.memoryMode = "strict";
          break;
        case VIR_DOMAIN_NUMATUNE_MEM_PREFERRED:
          out.memoryMode = "preferred";
          break;
        case VIR_DOMAIN_NUMATUNE_MEM_INTERLEAVE:
          out.memoryMode = "interleave";
          break;
        default:
          out.memoryMode = "restrictive";
          break;
      }
    }
  }
  return out;
}

Result<void> LibvirtPinner::pinThreads(
    const std::string& domain, const CpuList& cpus, const std::string& call,
    const std::function<int(virDomainPtr, unsigned char*, int, unsigned)>& pin) {
  auto handle = connection_->domain(domain);
  if (!handle) return handle.error();
  auto flags = affectFlags(handle.value()->ptr, domain);
  if (!flags) return flags.error();
  auto map = toCpuMap(cpus, hostCpus_, domain);
  if (!map) return map.error();
  if (pin(handle.value()->ptr, map->data(), int(map->size()), *flags) < 0)
    return libvirtError(call, domain, formatCpuList(cpus));
  return ok();
}

Result<void> LibvirtPinner::pinVcpu(const std::string& domain, unsigned vcpu, const CpuList& cpus) {
  return pinThreads(domain, cpus, "virDomainPinVcpuFlags vCPU " + std::to_string(vcpu),
                    [vcpu](virDomainPtr d, unsigned char* map, int length, unsigned flags) {
                      return virDomainPinVcpuFlags(d, vcpu, map, length, flags);
                    });
}

Result<void> LibvirtPinner::pinEmulator(const std::string& domain, const CpuList& cpus) {
  return pinThreads(domain, cpus, "virDomainPinEmulator", virDomainPinEmulator);
}

Result<void> LibvirtPinner::pinIothread(const std::string& domain, unsigned id,
                                        const CpuList& cpus) {
  return pinThreads(domain, cpus, "virDomainPinIOThread " + std::to_string(id),
                    [id](virDomainPtr d, unsigned char* map, int length, unsigned flags) {
                      return virDomainPinIOThread(d, id, map, length, flags);
                    });
}

Result<void> LibvirtPinner::setMemoryNodes(const std::string& domain, const CpuList& nodes) {
  auto handle = connection_->domain(domain);
  if (!handle) return handle.error();
  auto flags = affectFlags(handle.value()->ptr, domain);
  if (!flags) return flags.error();
  const std::string nodeset = formatCpuList(nodes);
  auto current = pinning(domain);
  if (!current) return current.error();
  if (current->memoryNodes == nodes) return ok();
  virTypedParameterPtr params = nullptr;
  int count = 0;
  int capacity = 0;
  if (virTypedParamsAddString(&params, &count, &capacity, VIR_DOMAIN_NUMA_NODESET,
                              nodeset.c_str()) < 0)
    return libvirtError("virTypedParamsAddString", domain, nodeset);
  // A running domain's nodeset can change again later only in restrictive
  // mode (libvirt then moves memory with cpuset.mems alone), and libvirt
  // sets a mode live only on a domain without <numatune>: it is chosen
  // there. A domain defined with another mode keeps it, and libvirt refuses
  // to change its nodeset while it runs.
  if (current->memoryNodes.empty() &&
      virTypedParamsAddInt(&params, &count, &capacity, VIR_DOMAIN_NUMA_MODE,
                           VIR_DOMAIN_NUMATUNE_MEM_RESTRICTIVE) < 0) {
    virTypedParamsFree(params, count);
    return libvirtError("virTypedParamsAddInt", domain, nodeset);
  }
  int set = virDomainSetNumaParameters(handle.value()->ptr, params, count, *flags);
  virTypedParamsFree(params, count);
  if (set < 0) return libvirtError("virDomainSetNumaParameters", domain, nodeset);
  return ok();
}

}  // namespace Atoll::numa
