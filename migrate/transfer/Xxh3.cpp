#include "migrate/transfer/Xxh3.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "migrate/transfer/Xxh3Avx2.h"

namespace Atoll::transfer {

namespace {
bool cpuHasAvx2() {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)  // as in Xxh3Avx2.cpp
  // libgcc also checks that the kernel saves the YMM registers (XGETBV).
  return __builtin_cpu_supports("avx2");
#else
  return false;
#endif
}
}  // namespace

uint64_t xxh3WithSeedBaseline(const void* data, size_t length, uint64_t seed) {
  return XXH3_64bits_withSeed(data, length, seed);
}

uint64_t xxh3WithSeed(const void* data, size_t length, uint64_t seed) {
  if (xxh3UsesAvx2()) return xxh3WithSeedAvx2(data, length, seed);
  return XXH3_64bits_withSeed(data, length, seed);
}

bool xxh3UsesAvx2() {
  static const bool avx2 = cpuHasAvx2();
  return avx2;
}

}  // namespace Atoll::transfer
