#include <gtest/gtest.h>

#include "runtime/CpuList.h"
#include "runtime/ListenAddress.h"

namespace Atoll {
namespace {

TEST(CpuSet, ParsesKernelListSyntax) {
  auto set = CpuSet::parse("0-3, 8,10-11,2");
  ASSERT_TRUE(set) << set.error().message();
  EXPECT_EQ(set->indices(), (std::vector<unsigned>{0, 1, 2, 3, 8, 10, 11}));
  EXPECT_EQ(set->toString(), "0-3,8,10-11");
}

TEST(CpuSet, RejectsMalformedListsNamingTheItem) {
  for (const char* bad : {"", "3-1", "a", "1,,2", "1,", "-1", "0-9000", "1-", "1 2"}) {
    auto set = CpuSet::parse(bad);
    EXPECT_FALSE(set) << "'" << bad << "' parsed";
  }
  EXPECT_NE(CpuSet::parse("3-1").error().detail.find("reversed"), std::string::npos);
  EXPECT_NE(CpuSet::parse("0,x").error().detail.find("'x'"), std::string::npos);
}

TEST(CpuSet, FromIndicesChecksRange) {
  EXPECT_TRUE(CpuSet::fromIndices({3, 1, 1}));
  EXPECT_EQ(CpuSet::fromIndices({3, 1, 1})->toString(), "1,3");
  EXPECT_FALSE(CpuSet::fromIndices({-1}));
  EXPECT_FALSE(CpuSet::fromIndices({}));
  EXPECT_FALSE(CpuSet::fromIndices({CpuSet::kMaxIndex + 1}));
}

TEST(CpuSet, Intersects) {
  auto a = *CpuSet::parse("0-5");
  auto b = *CpuSet::parse("4-9");
  EXPECT_EQ(a.intersect(b).toString(), "4-5");
  EXPECT_TRUE(a.intersect(*CpuSet::parse("7")).empty());
}

TEST(ListenAddress, ParsesNumericAddresses) {
  auto v4 = ListenAddress::parse("127.0.0.1:9464");
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->host, "127.0.0.1");
  EXPECT_EQ(v4->port, 9464);
  EXPECT_TRUE(v4->isLoopback());
  EXPECT_EQ(v4->toString(), "127.0.0.1:9464");
  auto v6 = ListenAddress::parse("[::1]:0");
  ASSERT_TRUE(v6);
  EXPECT_TRUE(v6->ipv6);
  EXPECT_EQ(v6->toString(), "[::1]:0");
  EXPECT_TRUE(v6->isLoopback());
  EXPECT_FALSE(ListenAddress::parse("0.0.0.0:1")->isLoopback());
}

TEST(ListenAddress, RejectsNamesAndBadPorts) {
  for (const char* bad : {"localhost:9464", "127.0.0.1", "127.0.0.1:", "127.0.0.1:70000", "::1:80",
                          "[::1]80", "[nope]:80", "1.2.3.4:-1", ":80"})
    EXPECT_FALSE(ListenAddress::parse(bad)) << bad;
}

}  // namespace
}  // namespace Atoll
