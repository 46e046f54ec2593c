// The island and pin routes on the real server and store: every change is
// validated whole against the (recorded, two-node, 16-CPU) topology, the
// other islands, the running processes and the VMs before anything is
// stored; a refusal is a 4xx naming the value and leaves the store as it
// was. VMs come from an in-memory VmPinner (LibvirtPinner is tested on a
// real libvirtd in tests/numa/libvirt).
#include <gtest/gtest.h>
#include <unistd.h>

#include "runtime/IslandSubsystem.h"
#include "tests/numa/islands/InMemoryVmPinner.h"
#include "tests/runtime/ApiHarness.h"

namespace Atoll {
namespace {

using test::httpRequest;
using test::rawExchange;

constexpr const char* kHostCgroup2 = "/sys/fs/cgroup/unified";

class IslandApi : public ::testing::Test {
 protected:
  IslandApi() : api(AccessPolicy(::getgid(), "test-admins")) {}

  void SetUp() override {
    auto topology =
        numa::Topology::fromXmlFile(std::string(ATOLL_NUMA_FIXTURES) + "/two-socket-smt-off.xml");
    ASSERT_TRUE(topology) << topology.error().message();
    islands = std::make_unique<IslandSubsystem>(
        api.store(), api.actions(), [] { return std::vector<IslandSettings>{}; }, kHostCgroup2,
        "atoll-api-test.slice");
    islands->useTopology(std::move(*topology));
    islands->usePinners([]() -> Result<std::unique_ptr<numa::VmPinner>> {
      auto pinner = std::make_unique<numa::testing::InMemoryVmPinner>(16, 2);
      pinner->addDomain("db-1", 2, 1);
      return std::unique_ptr<numa::VmPinner>(std::move(pinner));
    });
    api.context().islands = islands.get();
    api.start();
  }

  test::RawResponse send(const std::string& method, const std::string& path,
                         const nlohmann::json& body = nullptr) {
    return rawExchange(api.socketPath(),
                       httpRequest(method, path, body.is_null() ? std::string() : body.dump()));
  }
  nlohmann::json bodyOf(const test::RawResponse& response) {
    return nlohmann::json::parse(response.body, nullptr, false);
  }
  std::optional<nlohmann::json> stored(const std::string& key) {
    auto entry = api.store().get(Keyspace::Desired, key);
    if (!entry || !*entry) return std::nullopt;
    return (*entry)->value;
  }
  // A refusal: the status, the value named in the reason, nothing stored.
  void expectRefused(const std::string& method, const std::string& path, const nlohmann::json& body,
                     int status, const std::string& named) {
    const uint64_t before = api.store().revision();
    auto response = send(method, path, body);
    EXPECT_EQ(response.status, status)
        << method << " " << path << " " << body.dump() << ": " << response.body;
    EXPECT_NE(response.body.find(named), std::string::npos) << response.body;
    EXPECT_EQ(api.store().revision(), before) << "a refused change was stored";
  }

  test::ApiHarness api;
  std::unique_ptr<IslandSubsystem> islands;
};

TEST_F(IslandApi, CreateStoresEverySettingAndRefusesADuplicate) {
  const nlohmann::json body = {{"name", "db"},
                               {"cpus", "8-11"},
                               {"mems", "1"},
                               {"exclusivity", "root"},
                               {"limits", {{"cpu.weight", 300}, {"memory.high", 1048576}}}};
  auto created = send("POST", "/v1/islands", body);
  ASSERT_EQ(created.status, 201) << created.body;
  const nlohmann::json expected = {{"cpus", "8-11"},
                                   {"mems", "1"},
                                   {"exclusivity", "root"},
                                   {"limits", {{"cpu.weight", 300}, {"memory.high", 1048576}}}};
  EXPECT_EQ(stored("islands/db"), expected);
  EXPECT_EQ(bodyOf(created)["island"]["name"], "db");
  expectRefused("POST", "/v1/islands", body, 409, "'db'");
}

TEST_F(IslandApi, CountIsPlacedByTheAllocatorAwayFromOtherIslands) {
  ASSERT_EQ(send("POST", "/v1/islands", {{"name", "a"}, {"cpus", "0-3"}}).status, 201);
  auto placed = send("POST", "/v1/islands", {{"name", "b"}, {"count", 2}, {"mems", "0"}});
  ASSERT_EQ(placed.status, 201) << placed.body;
  auto cpus = numa::parseCpuList(stored("islands/b")->at("cpus").get<std::string>(), "cpus");
  ASSERT_TRUE(cpus);
  ASSERT_EQ(cpus->size(), 2u);
  for (unsigned cpu : *cpus) EXPECT_TRUE(cpu >= 4 && cpu <= 7) << cpu;
}

TEST_F(IslandApi, BadIslandsAreRefusedNamingTheValueAndNothingIsStored) {
  ASSERT_EQ(send("POST", "/v1/islands", {{"name", "db"}, {"cpus", "8-11"}, {"exclusivity", "root"}})
                .status,
            201);
  // Overlapping an exclusive island.
  expectRefused("POST", "/v1/islands", {{"name", "web"}, {"cpus", "11-12"}}, 400, "11");
  // A CPU and a node that do not exist.
  expectRefused("POST", "/v1/islands", {{"name", "web"}, {"cpus", "40"}}, 400, "40");
  expectRefused("POST", "/v1/islands", {{"name", "web"}, {"cpus", "1"}, {"mems", "5"}}, 400, "5");
  // Leaving the shared island without a CPU.
  expectRefused("POST", "/v1/islands", {{"name", "web"}, {"cpus", "0-7,12-15"}}, 400, "shared");
  // A selector matching nothing, a bad limit, an unknown field, a bad name.
  expectRefused("POST", "/v1/islands",
                {{"name", "web"}, {"cpus", "1"}, {"selectors", {"vm:no-such-vm-*"}}}, 400,
                "no-such-vm-*");
  expectRefused("POST", "/v1/islands",
                {{"name", "web"}, {"cpus", "1"}, {"limits", {{"io.weight", 0}}}}, 400, "io.weight");
  expectRefused("POST", "/v1/islands", {{"name", "web"}, {"cpus", "1"}, {"colour", "red"}}, 400,
                "colour");
  expectRefused("POST", "/v1/islands", {{"name", "../etc"}, {"cpus", "1"}}, 400, "../etc");
  expectRefused("POST", "/v1/islands", {{"name", "web"}}, 400, "count");
  expectRefused("PUT", "/v1/islands/nosuch", {{"cpus", "1"}}, 404, "nosuch");
  expectRefused("PUT", "/v1/islands/db", {{"cpus", "0-15"}}, 400, "shared");
  // Not JSON at all.
  const uint64_t before = api.store().revision();
  auto garbage = rawExchange(api.socketPath(), httpRequest("POST", "/v1/islands", "{cpus"));
  EXPECT_EQ(garbage.status, 400) << garbage.body;
  EXPECT_EQ(api.store().revision(), before);
}

TEST_F(IslandApi, ASelectorMatchingNoCgroupIsRefused) {
  if (::access((std::string(kHostCgroup2) + "/cgroup.procs").c_str(), R_OK) != 0)
    GTEST_SKIP() << "no cgroup2 hierarchy at " << kHostCgroup2;
  expectRefused("POST", "/v1/islands",
                {{"name", "web"}, {"cpus", "1"}, {"selectors", {"atoll-no-such-family/*"}}}, 400,
                "atoll-no-such-family/*");
}

TEST_F(IslandApi, UpdateMergesLimitsGrowsAndKeepsWhatItDoesNotName) {
  ASSERT_EQ(send("POST", "/v1/islands",
                 {{"name", "db"}, {"cpus", "8-9"}, {"limits", {{"cpu.weight", 300}}}})
                .status,
            201);
  auto grown = send("PUT", "/v1/islands/db", {{"grow", 2}, {"limits", {{"io.weight", 50}}}});
  ASSERT_EQ(grown.status, 200) << grown.body;
  auto value = stored("islands/db");
  ASSERT_TRUE(value);
  auto cpus = numa::parseCpuList(value->at("cpus").get<std::string>(), "cpus");
  ASSERT_TRUE(cpus);
  EXPECT_EQ(cpus->size(), 4u);
  EXPECT_TRUE(numa::contains(*cpus, 8) && numa::contains(*cpus, 9)) << value->dump();
  EXPECT_EQ(value->at("limits"), (nlohmann::json{{"cpu.weight", 300}, {"io.weight", 50}}));
}

TEST_F(IslandApi, PinsNeedARunningWorkloadAndADesiredIsland) {
  ASSERT_EQ(send("POST", "/v1/islands", {{"name", "db"}, {"cpus", "8-9"}}).status, 201);
  const std::string self = "pid:" + std::to_string(::getpid());
  auto pinned = send("PUT", "/v1/pins/" + self, {{"island", "db"}, {"source", "operator"}});
  ASSERT_EQ(pinned.status, 200) << pinned.body;
  EXPECT_EQ(stored("pins/" + self), (nlohmann::json{{"island", "db"}, {"source", "operator"}}));
  auto vm = send("PUT", "/v1/pins/db-1", {{"island", "db"}, {"source", "planner"}});
  ASSERT_EQ(vm.status, 200) << vm.body;
  EXPECT_EQ(stored("pins/db-1"), (nlohmann::json{{"island", "db"}, {"source", "planner"}}));

  expectRefused("PUT", "/v1/pins/no-such-vm", {{"island", "db"}}, 404, "no-such-vm");
  expectRefused("PUT", "/v1/pins/pid:2147483647", {{"island", "db"}}, 404, "2147483647");
  expectRefused("PUT", "/v1/pins/" + self, {{"island", "nosuch"}}, 404, "nosuch");
  expectRefused("PUT", "/v1/pins/" + self, {{"island", "db"}, {"source", "robot"}}, 400, "robot");
  expectRefused("PUT", "/v1/pins/pid:x", {{"island", "db"}}, 400, "pid:x");
  // An island that still holds pins is not deleted.
  expectRefused("DELETE", "/v1/islands/db", nullptr, 409, "still holds pinned workload");

  // Unpinning to the shared island is a pin too.
  ASSERT_EQ(send("PUT", "/v1/pins/" + self, {{"island", "shared"}}).status, 200);
  ASSERT_EQ(send("DELETE", "/v1/pins/" + self).status, 200);
  ASSERT_EQ(send("DELETE", "/v1/pins/db-1").status, 200);
  EXPECT_EQ(send("DELETE", "/v1/pins/db-1").status, 404);
  auto deleted = send("DELETE", "/v1/islands/db");
  ASSERT_EQ(deleted.status, 200) << deleted.body;
  EXPECT_EQ(stored("islands/db"), (nlohmann::json{{"absent", true}}));
  expectRefused("DELETE", "/v1/islands/db", nullptr, 404, "db");
  // The name can be used again.
  EXPECT_EQ(send("POST", "/v1/islands", {{"name", "db"}, {"cpus", "1"}}).status, 201);
}

// The daemon pins through the libvirt telemetry names domains with
// ([telemetry] libvirt_uri). Pinning a VM is refused, naming why, when that
// libvirt is not used here or cannot be reached at the URI given.
TEST_F(IslandApi, VmPinsGoToTheConfiguredLibvirtOrAreRefusedSayingWhy) {
  ASSERT_EQ(send("POST", "/v1/islands", {{"name", "db"}, {"cpus", "8-9"}}).status, 201);
  islands->usePinners(IslandSubsystem::libvirtPinners(""));
  expectRefused("PUT", "/v1/pins/db-1", {{"island", "db"}}, 503, "libvirt_uri is empty");

  const std::string socket = "/nonexistent-atoll-test/libvirt-sock";
  islands->usePinners(IslandSubsystem::libvirtPinners("qemu+unix:///system?socket=" + socket));
  expectRefused("PUT", "/v1/pins/db-1", {{"island", "db"}}, 503, socket);

  // A process needs no libvirt.
  const std::string self = "pid:" + std::to_string(::getpid());
  EXPECT_EQ(send("PUT", "/v1/pins/" + self, {{"island", "db"}}).status, 200);
}

}  // namespace
}  // namespace Atoll
