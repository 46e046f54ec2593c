#include "numa/NumaMaps.h"

#include <gtest/gtest.h>

namespace Atoll {
namespace {

// Lines as a 6.1 kernel prints them, from a process with a two-node policy.
constexpr std::string_view kSample =
    "55a7b3e07000 default file=/usr/bin/head mapped=2 active=1 N0=2 kernelpagesize_kB=4\n"
    "55a7c41d7000 default heap anon=4 dirty=4 active=0 N0=4 kernelpagesize_kB=4\n"
    "7f3a00000000 bind:1 anon=16384 dirty=16384 active=0 N1=16384 kernelpagesize_kB=4\n"
    "7f3b00000000 interleave:0-1 anon=10 dirty=10 N0=6 N1=4 kernelpagesize_kB=4\n"
    "7f3c00000000 default\n"
    "7ffd1c9e3000 default stack anon=3 dirty=3 N0=3 kernelpagesize_kB=4\n";

TEST(NumaMapsTest, ParsesEveryMapping) {
  auto entries = parseNumaMaps(kSample, "/proc/42/numa_maps");
  ASSERT_TRUE(entries) << entries.error().message();
  ASSERT_EQ(entries->size(), 6u);

  const auto& file = (*entries)[0];
  EXPECT_EQ(file.start, 0x55a7b3e07000u);
  EXPECT_EQ(file.policy, "default");
  EXPECT_EQ(file.file, "/usr/bin/head");
  EXPECT_EQ(file.anonPages, 0u);
  EXPECT_EQ(file.pagesOn(0), 2u);
  EXPECT_EQ(file.kernelPageSizeKiB, 4u);

  const auto& bound = (*entries)[2];
  EXPECT_EQ(bound.policy, "bind:1");
  EXPECT_EQ(bound.anonPages, 16384u);
  EXPECT_EQ(bound.pagesOn(1), 16384u);
  EXPECT_EQ(bound.pagesOn(0), 0u);
  EXPECT_EQ(bound.pagesOnNode.count(0), 0u);
}

TEST(NumaMapsTest, CountsPagesPerNode) {
  auto entries = parseNumaMaps(kSample, "/proc/42/numa_maps");
  ASSERT_TRUE(entries);
  const auto* interleaved = findMapping(*entries, 0x7f3b00000000u);
  ASSERT_NE(interleaved, nullptr);
  EXPECT_EQ(interleaved->pagesOn(0), 6u);
  EXPECT_EQ(interleaved->pagesOn(1), 4u);
  EXPECT_EQ(interleaved->pagesOnNode.size(), 2u);
}

TEST(NumaMapsTest, MappingWithoutPagesHasNoCounts) {
  auto entries = parseNumaMaps(kSample, "/proc/42/numa_maps");
  ASSERT_TRUE(entries);
  const auto* empty = findMapping(*entries, 0x7f3c00000000u);
  ASSERT_NE(empty, nullptr);
  EXPECT_TRUE(empty->pagesOnNode.empty());
  EXPECT_EQ(empty->kernelPageSizeKiB, 0u);
}

TEST(NumaMapsTest, FindsOnlyExactStarts) {
  auto entries = parseNumaMaps(kSample, "/proc/42/numa_maps");
  ASSERT_TRUE(entries);
  EXPECT_EQ(findMapping(*entries, 0x7f3a00001000u), nullptr);
  EXPECT_NE(findMapping(*entries, 0x7ffd1c9e3000u), nullptr);
}

TEST(NumaMapsTest, EmptyTextHasNoMappings) {
  auto entries = parseNumaMaps("", "/proc/42/numa_maps");
  ASSERT_TRUE(entries);
  EXPECT_TRUE(entries->empty());
}

TEST(NumaMapsTest, MalformedLinesNameTheLine) {
  auto badAddress = parseNumaMaps("zzzz default N0=1\n", "/proc/42/numa_maps");
  ASSERT_FALSE(badAddress);
  EXPECT_EQ(badAddress.error().path, "/proc/42/numa_maps");
  EXPECT_EQ(badAddress.error().value, "zzzz default N0=1");
  EXPECT_NE(badAddress.error().message().find("zzzz"), std::string::npos);

  auto badCount = parseNumaMaps("7f3a00000000 default N1=lots\n", "/proc/42/numa_maps");
  ASSERT_FALSE(badCount);
  EXPECT_NE(badCount.error().detail.find("N1=lots"), std::string::npos);

  auto badNode = parseNumaMaps("7f3a00000000 default Nx=3\n", "/proc/42/numa_maps");
  ASSERT_FALSE(badNode);

  auto noPolicy = parseNumaMaps("7f3a00000000\n", "/proc/42/numa_maps");
  ASSERT_FALSE(noPolicy);
}

}  // namespace
}  // namespace Atoll
