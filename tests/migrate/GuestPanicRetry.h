#pragma once
// QEMU 7.2's TCG sometimes delivers a guest whose kernel dies on the
// destination, on QEMU's own direct path too. The guest's RAM size keeps
// clear of the known cause, lost dirty-page tracking (see QemuGuest.cpp);
// this guards against what is left. A migration test runs its
// body again when that happens (the body says so through its argument), so
// that such a run is told apart from a failure of Atoll's code; a body that
// failed otherwise is not run again.
#include <gtest/gtest.h>

#include <cstdio>
#include <functional>

namespace Atoll::transfer::testing {

inline void retryWhileGuestPanics(int attempts,
                                  const std::function<void(bool& guestPanicked)>& body) {
  for (int attempt = 1; attempt <= attempts; ++attempt) {
    bool guestPanicked = false;
    body(guestPanicked);
    if (::testing::Test::HasFailure() || !guestPanicked) return;
    std::printf("  attempt %d: the guest's kernel panicked after a migration (QEMU TCG); again\n",
                attempt);
  }
  FAIL() << "the guest's kernel panicked after a migration in all " << attempts << " attempts";
}

}  // namespace Atoll::transfer::testing
