#pragma once
// What every QEMU live-migration test needs around the migration itself: a
// guest image (or a skip that says why not), the retry when QEMU's TCG
// delivers a guest whose kernel then dies, and the check that the guest runs
// on at the destination.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "QemuGuest.h"
#include "TestImages.h"
#include "migrate/transfer/TransferServer.h"

namespace Atoll::transfer::testing {

// A loopback port free at the time of the call, for QEMU's -incoming or a
// peer that must not be listening.
uint16_t freeLoopbackPort();

// The guest's kernel died on `guest` (a panic on its serial console).
bool guestKernelPanicked(const QemuGuest& guest);

// Runs `body` with a guest image: skips the test without root or without an
// image (naming why), and runs the body again, up to `attempts` times, while
// it reports that the guest panicked (see retryWhileGuestPanics).
void withGuestImage(int attempts,
                    const std::function<void(const GuestImage&, bool& guestPanicked)>& body);

// Boots the counter guest named "source" in `workDir` and waits until its
// workload runs; null, with a test failure that says why, otherwise.
std::unique_ptr<QemuGuest> startSourceGuest(const GuestImage& image, const std::string& workDir);

// A started tunnel server on a loopback port, staging in DIR/staging, for
// tunnels relayed to the unix socket `destination` or handed off to the
// destination QEMU behind the QMP socket `destinationQmp` (either may be
// empty); null, with a test failure, when it cannot start.
std::unique_ptr<TransferServer> loopbackTunnelServer(const TempDir& dir,
                                                     const std::string& destination,
                                                     const std::string& destinationQmp = "");

// After QEMU reported the migration completed: the source waits in
// "postmigrate", the destination leaves "inmigrate" for "running", and the
// guest's counter advances there past where it stopped on the source with
// its memory pattern intact. Sets `guestPanicked` instead of failing when the
// guest's kernel died on the destination.
void expectGuestRunsOnAtDestination(QemuGuest& source, QemuGuest& destination, bool& guestPanicked);

}  // namespace Atoll::transfer::testing
