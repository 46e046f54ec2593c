// The registry of destination QEMUs by tunnel id, and the id's text form.
#include "migrate/transfer/TunnelDestinations.h"

#include <gtest/gtest.h>

#include <set>

namespace Atoll::transfer {
namespace {

using namespace std::chrono_literals;
using Clock = TunnelDestinations::Clock;

TunnelDestination relayTo(const std::string& unixSocket) {
  TunnelDestination destination;
  destination.unixSocket = unixSocket;
  return destination;
}

TunnelDestination handOffTo(const std::string& qmpSocket) {
  TunnelDestination destination;
  destination.qmpSocket = qmpSocket;
  return destination;
}

TEST(TunnelDestinationsTest, FindsWhatWasAddedUntilRemoved) {
  TunnelDestinations registry;
  auto now = Clock::now();
  auto relay = registry.add(relayTo("/run/atoll/vm1.incoming"), 60s, now);
  ASSERT_TRUE(relay) << relay.error().message();
  auto handOff = registry.add(handOffTo("/run/atoll/vm2.qmp"), 60s, now);
  ASSERT_TRUE(handOff) << handOff.error().message();
  EXPECT_NE(*relay, *handOff);

  auto found = registry.find(*relay, now);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->unixSocket, "/run/atoll/vm1.incoming");
  EXPECT_TRUE(found->qmpSocket.empty());
  found = registry.find(*handOff, now);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->qmpSocket, "/run/atoll/vm2.qmp");
  EXPECT_TRUE(found->unixSocket.empty());

  auto listed = registry.list(now);
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_LT(listed[0].tunnelId, listed[1].tunnelId);
  EXPECT_EQ(listed[0].expiresAt, now + 60s);

  EXPECT_TRUE(registry.remove(*relay));
  EXPECT_FALSE(registry.find(*relay, now));
  EXPECT_FALSE(registry.remove(*relay));
  EXPECT_TRUE(registry.find(*handOff, now));
  EXPECT_EQ(registry.list(now).size(), 1u);
}

TEST(TunnelDestinationsTest, UnknownIdIsNotFound) {
  TunnelDestinations registry;
  auto id = registry.add(relayTo("/run/atoll/vm1.incoming"), 60s);
  ASSERT_TRUE(id);
  EXPECT_FALSE(registry.find(*id + 1));
  EXPECT_FALSE(registry.find(0));
  EXPECT_FALSE(registry.remove(*id + 1));
}

TEST(TunnelDestinationsTest, EntriesExpireAtTheirLifetime) {
  TunnelDestinations registry;
  auto registeredAt = Clock::now();
  auto shortLived = registry.add(relayTo("/run/atoll/short.incoming"), 10s, registeredAt);
  auto longLived = registry.add(handOffTo("/run/atoll/long.qmp"), 100s, registeredAt);
  ASSERT_TRUE(shortLived && longLived);

  EXPECT_TRUE(registry.find(*shortLived, registeredAt + 9s));
  EXPECT_EQ(registry.list(registeredAt + 9s).size(), 2u);
  EXPECT_FALSE(registry.find(*shortLived, registeredAt + 10s));
  EXPECT_TRUE(registry.find(*longLived, registeredAt + 10s));
  auto listed = registry.list(registeredAt + 50s);
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].tunnelId, *longLived);
  EXPECT_TRUE(registry.list(registeredAt + 100s).empty());
  EXPECT_FALSE(registry.find(*longLived, registeredAt + 100s));
}

TEST(TunnelDestinationsTest, RefusesDestinationsItCannotServe) {
  TunnelDestinations registry;
  TunnelDestination both;
  both.unixSocket = "/run/atoll/both.incoming";
  both.qmpSocket = "/run/atoll/both.qmp";
  auto refused = registry.add(both, 60s);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("/run/atoll/both.incoming"), std::string::npos)
      << refused.error().message();
  EXPECT_NE(refused.error().message().find("/run/atoll/both.qmp"), std::string::npos)
      << refused.error().message();

  refused = registry.add(TunnelDestination{}, 60s);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("neither"), std::string::npos)
      << refused.error().message();

  refused = registry.add(relayTo("relative/vm.incoming"), 60s);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("relative/vm.incoming"), std::string::npos)
      << refused.error().message();
  refused = registry.add(handOffTo("vm.qmp"), 60s);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("vm.qmp"), std::string::npos)
      << refused.error().message();

  refused = registry.add(relayTo("/" + std::string(200, 'x')), 60s);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("longer than a unix socket address"), std::string::npos)
      << refused.error().message();

  refused = registry.add(relayTo("/run/atoll/vm.incoming"), 0s);
  ASSERT_FALSE(refused);
  EXPECT_TRUE(registry.list().empty());
}

TEST(TunnelDestinationsTest, IdsAreUniqueAndNotZero) {
  TunnelDestinations registry;
  std::set<uint64_t> ids;
  auto now = Clock::now();
  constexpr int kEntries = 2000;
  for (int i = 0; i < kEntries; ++i) {
    auto id = registry.add(relayTo("/run/atoll/vm" + std::to_string(i) + ".incoming"), 60s, now);
    ASSERT_TRUE(id) << id.error().message();
    EXPECT_NE(*id, 0u);
    ids.insert(*id);
  }
  EXPECT_EQ(ids.size(), static_cast<size_t>(kEntries));
  EXPECT_EQ(registry.list(now).size(), static_cast<size_t>(kEntries));
}

TEST(TunnelIdTextTest, IsSixteenLowercaseHexDigitsAndParsesBack) {
  EXPECT_EQ(tunnelIdText(1), "0000000000000001");
  EXPECT_EQ(tunnelIdText(0xDEADBEEFCAFEF00DULL), "deadbeefcafef00d");
  for (uint64_t id :
       {uint64_t{1}, uint64_t{0xabc}, uint64_t{0x8000000000000000ULL}, ~uint64_t{0}}) {
    auto parsed = parseTunnelId(tunnelIdText(id));
    ASSERT_TRUE(parsed) << parsed.error().message();
    EXPECT_EQ(*parsed, id);
  }
  TunnelDestinations registry;
  auto id = registry.add(relayTo("/run/atoll/vm.incoming"), 60s);
  ASSERT_TRUE(id);
  auto parsed = parseTunnelId(tunnelIdText(*id));
  ASSERT_TRUE(parsed);
  EXPECT_EQ(*parsed, *id);
}

TEST(TunnelIdTextTest, ParsesShortFormsPrefixAndCase) {
  auto parsed = parseTunnelId("1f");
  ASSERT_TRUE(parsed);
  EXPECT_EQ(*parsed, 0x1fu);
  parsed = parseTunnelId("0xAbC");
  ASSERT_TRUE(parsed);
  EXPECT_EQ(*parsed, 0xabcu);
  parsed = parseTunnelId("0XFFFFFFFFFFFFFFFF");
  ASSERT_TRUE(parsed);
  EXPECT_EQ(*parsed, ~uint64_t{0});
}

TEST(TunnelIdTextTest, RefusalsNameTheText) {
  for (const std::string text : {"", "0x", "0", "0000000000000000", "0x0", "xyz", "12g4", "-1",
                                 " 1f", "1f ", "10000000000000000", "0x10000000000000000"}) {
    auto parsed = parseTunnelId(text);
    ASSERT_FALSE(parsed) << "'" << text << "' parsed as " << *parsed;
    EXPECT_NE(parsed.error().message().find("'" + text + "'"), std::string::npos)
        << parsed.error().message();
  }
}

}  // namespace
}  // namespace Atoll::transfer
