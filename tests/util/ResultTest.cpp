#include "util/Result.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <string>

namespace Atoll {
namespace {

Result<int> parsePositive(const std::string& text) {
  int value = std::stoi(text);
  if (value <= 0) return Error::invalid("parse", "test", text, "must be positive");
  return value;
}

TEST(Result, CarriesValue) {
  auto r = parsePositive("42");
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, 42);
}

TEST(Result, CarriesErrorNamingTheValue) {
  auto r = parsePositive("-3");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().value, "-3");
  EXPECT_NE(r.error().message().find("'-3'"), std::string::npos);
}

TEST(Error, MessageIncludesPathValueAndErrno) {
  auto e = Error::fromErrno("write", "/sys/fs/cgroup/x/cpuset.cpus", EINVAL, "9-12");
  EXPECT_EQ(e.message(),
            "write /sys/fs/cgroup/x/cpuset.cpus value '9-12': Invalid argument (errno 22)");
}

TEST(Result, VoidResult) {
  Result<void> good = ok();
  EXPECT_TRUE(good);
  Result<void> bad = Error::fromErrno("rmdir", "/x", EBUSY);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().errnum, EBUSY);
}

}  // namespace
}  // namespace Atoll
