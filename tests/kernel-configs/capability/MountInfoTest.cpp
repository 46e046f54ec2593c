// /proc/self/mountinfo parsing and the choice of cgroup2 mount.
#include <gtest/gtest.h>

#include "kernel-configs/CgroupProbes.h"
#include "kernel-configs/MountInfo.h"

namespace Atoll::capability {
namespace {

const std::string kSource = "mountinfo";

// Recorded on a hybrid host (v1 controllers plus cgroup2 at .../unified).
constexpr const char* kHybrid =
    "22 1 253:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
    "30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "33 30 0:30 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n"
    "40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

// A systemd host with the unified layout only.
constexpr const char* kUnified =
    "24 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro\n"
    "26 24 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
    "28 26 0:25 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 "
    "rw,nsdelegate,memory_recursiveprot\n";

TEST(MountInfoTest, ParsesFieldsAroundOptionalTags) {
  auto mounts = parseMountInfo(kUnified, kSource);
  ASSERT_TRUE(mounts) << mounts.error().message();
  ASSERT_EQ(mounts->size(), 3u);
  EXPECT_EQ((*mounts)[2].mountPoint, "/sys/fs/cgroup");
  EXPECT_EQ((*mounts)[2].fsType, "cgroup2");
  EXPECT_EQ((*mounts)[2].source, "cgroup2");
  EXPECT_EQ((*mounts)[2].root, "/");
  EXPECT_EQ((*mounts)[0].fsType, "ext4");
}

TEST(MountInfoTest, DecodesOctalEscapesInPaths) {
  auto mounts =
      parseMountInfo("50 22 0:40 / /mnt/my\\040cgroups\\134x rw - cgroup2 none rw\n", kSource);
  ASSERT_TRUE(mounts) << mounts.error().message();
  EXPECT_EQ((*mounts)[0].mountPoint, "/mnt/my cgroups\\x");
}

TEST(MountInfoTest, PrefersTheUnifiedLocationThenTheHybridOne) {
  auto unified = parseMountInfo(kUnified, kSource);
  ASSERT_TRUE(unified);
  EXPECT_EQ(findCgroup2Mount(*unified)->mountPoint, "/sys/fs/cgroup");
  EXPECT_FALSE(hasCgroup1Mounts(*unified));

  auto hybrid = parseMountInfo(kHybrid, kSource);
  ASSERT_TRUE(hybrid);
  EXPECT_EQ(findCgroup2Mount(*hybrid)->mountPoint, "/sys/fs/cgroup/unified");
  EXPECT_TRUE(hasCgroup1Mounts(*hybrid));

  auto elsewhere = parseMountInfo(
      "22 1 253:0 / / rw - ext4 /dev/vda rw\n"
      "60 22 0:50 / /run/atoll/cg rw - cgroup2 none rw\n",
      kSource);
  ASSERT_TRUE(elsewhere);
  EXPECT_EQ(findCgroup2Mount(*elsewhere)->mountPoint, "/run/atoll/cg");
}

TEST(MountInfoTest, NoCgroup2MountIsNotFound) {
  auto mounts = parseMountInfo("22 1 253:0 / / rw - ext4 /dev/vda rw\n", kSource);
  ASSERT_TRUE(mounts);
  EXPECT_FALSE(findCgroup2Mount(*mounts).has_value());
}

TEST(MountInfoTest, MalformedLineIsAnErrorNamingTheLine) {
  auto mounts = parseMountInfo("22 1 253:0 / / rw - ext4 /dev/vda rw\n23 1 0:5 /\n", kSource);
  ASSERT_FALSE(mounts);
  EXPECT_NE(mounts.error().message().find("line 2"), std::string::npos) << mounts.error().message();
  EXPECT_FALSE(parseMountInfo("22 1 253:0 / / rw shared:1 ext4 /dev/vda rw\n", kSource));
}

TEST(Cgroup2MountTest, VerdictNamesThePathAndTheLayout) {
  Feature hybrid = assessCgroup2Mount(Cgroup2Location{"/sys/fs/cgroup/unified", true});
  EXPECT_EQ(hybrid.name, "cgroup2.mount");
  EXPECT_EQ(hybrid.status, FeatureStatus::Ok);
  EXPECT_NE(hybrid.detail.find("/sys/fs/cgroup/unified"), std::string::npos);
  EXPECT_NE(hybrid.detail.find("hybrid"), std::string::npos);

  Result<Cgroup2Location> none =
      Error::invalid("find cgroup2 mount", "/proc/self/mountinfo", {}, "no cgroup2 filesystem");
  Feature missing = assessCgroup2Mount(none);
  EXPECT_EQ(missing.status, FeatureStatus::Missing);
  EXPECT_TRUE(missing.required);
  EXPECT_FALSE(missing.fix.empty());
}

}  // namespace
}  // namespace Atoll::capability
