// XXH3 compiled for AVX2 by a target pragma rather than a compiler flag, so
// the rest of the program keeps running on CPUs without AVX2; Xxh3.cpp calls
// it only after checking the CPU.
#include "migrate/transfer/Xxh3Avx2.h"

#include <immintrin.h>

// GCC only: clang spells per-function targets differently (and the project
// builds with GCC); elsewhere this is the baseline build, never chosen.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC target("avx2")
#define XXH_VECTOR XXH_AVX2
#endif
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace Atoll::transfer {

uint64_t xxh3WithSeedAvx2(const void* data, size_t length, uint64_t seed) {
  return XXH3_64bits_withSeed(data, length, seed);
}

}  // namespace Atoll::transfer
