#pragma once
// The AVX2 build of XXH3 (Xxh3Avx2.cpp); call it only where the CPU has AVX2.
#include <cstddef>
#include <cstdint>

namespace Atoll::transfer {

uint64_t xxh3WithSeedAvx2(const void* data, size_t length, uint64_t seed);

}  // namespace Atoll::transfer
