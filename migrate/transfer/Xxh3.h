#pragma once
// XXH3-64 of bulk data with the widest vector unit the running CPU offers.
// Debian builds for the x86-64 baseline (SSE2), where XXH3 runs at a third of
// its AVX2 speed; every block crosses it twice per transfer (sender and
// receiver), so the choice is made at run time. All variants return the same
// value: XXH3's output does not depend on the vector unit.
#include <cstddef>
#include <cstdint>

namespace Atoll::transfer {

uint64_t xxh3WithSeed(const void* data, size_t length, uint64_t seed);

// Whether xxh3WithSeed uses the AVX2 variant on this CPU (for reports and tests).
bool xxh3UsesAvx2();

// The baseline variant alone, so that tests can compare the two.
uint64_t xxh3WithSeedBaseline(const void* data, size_t length, uint64_t seed);

}  // namespace Atoll::transfer
