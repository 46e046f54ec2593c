#include "bpf/collector/LibvirtDomains.h"

#include <gtest/gtest.h>

namespace Atoll::telemetry {
namespace {

TEST(LibvirtDomains, UnifiedPathFromHybridProcCgroup) {
  const char* text =
      "12:memory:/machine/qemu-1-vm1.libvirt-qemu\n"
      "1:name=systemd:/\n"
      "0::/machine.slice/machine-qemu\\x2d1\\x2dvm1.scope/libvirt/emulator\n";
  EXPECT_EQ(unifiedCgroupPath(text),
            "machine.slice/machine-qemu\\x2d1\\x2dvm1.scope/libvirt/emulator");
  EXPECT_EQ(unifiedCgroupPath("3:cpu:/x\n"), "");
  EXPECT_EQ(unifiedCgroupPath("0::/\n"), "");
}

TEST(LibvirtDomains, ScopeOfEmulatorCgroup) {
  EXPECT_EQ(domainScopeOf("machine.slice/s.scope/libvirt/emulator"), "machine.slice/s.scope");
  EXPECT_EQ(domainScopeOf("machine/vm1/emulator"), "machine/vm1");
  EXPECT_EQ(domainScopeOf("machine.slice/s.scope"), "machine.slice/s.scope");
}

TEST(LibvirtDomains, UnreachableDaemonIsAnErrorValue) {
  // A socket path nobody listens on: libvirt must fail fast, not hang.
  auto domains = listLibvirtDomains("qemu:///system?socket=/nonexistent/atoll-test.sock");
  ASSERT_FALSE(domains);
  EXPECT_NE(domains.error().message().find("virConnectOpenReadOnly"), std::string::npos);
}

}  // namespace
}  // namespace Atoll::telemetry
