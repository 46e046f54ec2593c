#pragma once
// A small guest under QEMU TCG for live-migration tests: Debian's stock
// kernel (fetched into the test VM's kernel cache) and a busybox initramfs
// whose only process keeps a counter pattern in memory and reports it on the
// serial console. Two QEMUs with the same command line, one of them started
// with `-incoming`, make a migration source and destination.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "migrate/qemu/QmpClient.h"

namespace Atoll::transfer::testing {

struct GuestImage {
  std::string kernel;  // vmlinuz
  std::string initrd;  // the counter initramfs
};

// Fetches the kernel (cached) and builds the initramfs in `workDir`; an
// error explains why (no network to Debian's archive, no QEMU, ...), for a
// test to skip with.
std::optional<GuestImage> prepareGuestImage(const std::string& workDir, std::string& whyNot);

// What the counter guest printed on a serial log.
struct CounterProgress {
  int64_t lastPass = -1;  // -1: no progress line yet
  bool broken = false;    // a page lost its pattern
};
CounterProgress readCounterProgress(const std::string& serialLog);

class QemuGuest {
 public:
  // Starts QEMU; `incoming` empty boots the guest, otherwise it waits for a
  // migration stream there ("tcp:127.0.0.1:PORT", "unix:PATH").
  static std::unique_ptr<QemuGuest> start(const GuestImage& image, const std::string& workDir,
                                          const std::string& name, const std::string& incoming,
                                          std::string& error);
  ~QemuGuest();
  qemu::QmpClient& qmp() { return *qmp_; }
  const std::string& serialLog() const { return serialLog_; }
  // A second QMP monitor, free for another client (a monitor serves one
  // client at a time and qmp() holds the first): the `atoll` CLI in tests.
  const std::string& secondQmpPath() const { return secondQmpPath_; }
  CounterProgress progress() const { return readCounterProgress(serialLog_); }
  // Waits until the counter reached a pass beyond `pass`; false on timeout
  // or when the pattern broke.
  bool waitForPassBeyond(int64_t pass, std::chrono::milliseconds timeout) const;
  bool alive() const;
  pid_t pid() const { return pid_; }
  // Runs the guest's vCPU thread on `vcpuCpu` and every other thread of its
  // QEMU on `otherCpu`, as a hypervisor host pins vCPUs apart from the
  // emulator threads (libvirt's vcpupin and emulatorpin). Threads QEMU starts
  // later (the migration thread, started from the main thread) inherit the
  // main thread's CPU. False with `error` set when a thread could not be
  // placed.
  bool placeThreads(int vcpuCpu, int otherCpu, std::string& error);
  // The end of the serial console and QEMU's own messages, for a failure
  // report: why a guest or its QEMU stopped.
  std::string lastWords() const;

 private:
  QemuGuest() = default;
  pid_t pid_ = -1;
  std::string serialLog_;
  std::string stderrLog_;
  std::string secondQmpPath_;
  std::optional<qemu::QmpClient> qmp_;
};

}  // namespace Atoll::transfer::testing
