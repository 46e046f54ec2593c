#include "migrate/transfer/Xxh3.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "migrate/transfer/Xxh3Avx2.h"

namespace Atoll::transfer {
namespace {

// XXH3 has separate code paths for short inputs, for each stripe and for the
// tail of long ones: lengths around those borders, a block and a block plus a
// tail, unaligned starts.
std::vector<size_t> lengthsToCheck() {
  std::vector<size_t> lengths;
  for (size_t n = 0; n <= 260; ++n) lengths.push_back(n);
  for (size_t n : {1023u, 1024u, 1025u, 4095u, 4096u, 65536u + 7u, 1u << 20, (1u << 20) + 17u}) {
    lengths.push_back(n);
  }
  return lengths;
}

TEST(Xxh3, DispatchedVariantMatchesTheBaseline) {
  std::mt19937_64 random(7);
  std::vector<uint8_t> data((1 << 20) + 64);
  for (auto& byte : data) byte = static_cast<uint8_t>(random());
  for (size_t length : lengthsToCheck()) {
    for (size_t start : {0u, 3u}) {
      for (uint64_t seed : {0ull, 5ull, 0x9e3779b97f4a7c15ull}) {
        ASSERT_EQ(xxh3WithSeed(data.data() + start, length, seed),
                  xxh3WithSeedBaseline(data.data() + start, length, seed))
            << "length " << length << " start " << start << " seed " << seed;
      }
    }
  }
}

TEST(Xxh3, Avx2VariantMatchesTheBaselineWhereTheCpuHasIt) {
  if (!xxh3UsesAvx2()) GTEST_SKIP() << "this CPU has no AVX2 (or the kernel does not save YMM)";
  std::mt19937_64 random(11);
  std::vector<uint8_t> data((1 << 20) + 64);
  for (auto& byte : data) byte = static_cast<uint8_t>(random());
  for (size_t length : lengthsToCheck()) {
    ASSERT_EQ(xxh3WithSeedAvx2(data.data() + 1, length, length),
              xxh3WithSeedBaseline(data.data() + 1, length, length))
        << "length " << length;
  }
}

TEST(Xxh3, KnownValueOfTheEmptyInput) {
  // XXH3_64bits of nothing with seed 0, from the reference implementation.
  EXPECT_EQ(xxh3WithSeed(nullptr, 0, 0), 0x2D06800538D394C2ull);
}

}  // namespace
}  // namespace Atoll::transfer
