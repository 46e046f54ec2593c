#pragma once
// VmPinner on libvirt's C API: vCPU, emulator and I/O thread pinning and the
// numatune nodeset, written so that libvirt's own view and the domain's XML
// stay true. A running domain is changed live, and its persistent
// definition too when it has one, so the pinning survives a restart.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "numa/VmPinner.h"

// libvirt's domain handle (virDomainPtr), without its headers here.
struct _virDomain;

namespace Atoll::numa {

inline constexpr std::string_view kDefaultLibvirtUri = "qemu:///system";

// The text inside a metadata element as virDomainGetMetadata returns it
// ("<family xmlns='...'>inference</family>" reads "inference"), trimmed.
std::string metadataElementText(std::string_view xml);

class LibvirtPinner final : public VmPinner {
 public:
  static Result<std::unique_ptr<LibvirtPinner>> connect(
      const std::string& uri = std::string(kDefaultLibvirtUri));
  ~LibvirtPinner() override;
  LibvirtPinner(const LibvirtPinner&) = delete;
  LibvirtPinner& operator=(const LibvirtPinner&) = delete;

  const std::string& uri() const { return uri_; }
  // The host's CPU count as libvirt sees it (the size of its CPU maps).
  unsigned hostCpuCount() const { return hostCpus_; }

  Result<std::vector<std::string>> runningDomains() const override;
  Result<std::optional<std::string>> metadata(const std::string& domain,
                                              const std::string& uri) const override;
  Result<DomainPinning> pinning(const std::string& domain) const override;
  Result<void> pinVcpu(const std::string& domain, unsigned vcpu, const CpuList& cpus) override;
  Result<void> pinEmulator(const std::string& domain, const CpuList& cpus) override;
  Result<void> pinIothread(const std::string& domain, unsigned id, const CpuList& cpus) override;
  Result<void> setMemoryNodes(const std::string& domain, const CpuList& nodes) override;
  // The client notices a closed connection at the first call after the
  // close, which fails; virConnectIsAlive then says so.
  bool connected() const override;

 private:
  struct Connection;
  LibvirtPinner(std::string uri, std::unique_ptr<Connection> connection, unsigned hostCpus);

  std::string uri_;
  // The shared steps of pinning one kind of QEMU thread: the domain, the
  // live/config flags and the CPU map; `pin` makes the libvirt call (< 0 on
  // failure) and `call` names it in the error.
  Result<void> pinThreads(
      const std::string& domain, const CpuList& cpus, const std::string& call,
      const std::function<int(_virDomain*, unsigned char*, int, unsigned)>& pin);

  std::unique_ptr<Connection> connection_;
  unsigned hostCpus_ = 0;
};

}  // namespace Atoll::numa
