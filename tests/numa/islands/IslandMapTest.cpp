// The island map renderings: every CPU shown once with its island, members
// listed, shared CPUs accounted for; the SVG is well-formed and escaped.
#include <gtest/gtest.h>

#include "numa/IslandMap.h"
#include "tests/numa/islands/Fixtures.h"

namespace Atoll::numa {
namespace {

using testing::loadFixture;

std::size_t count(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

std::vector<IslandView> twoIslands() {
  IslandView db;
  db.island.name = "db";
  db.island.cpus = {0, 1, 2, 3};
  db.island.memNodes = {0};
  db.island.exclusivity = Exclusivity::Root;
  db.members = {{4242, "postgres"}};
  IslandView batch;
  batch.island.name = "batch<&>";
  batch.island.cpus = {16, 17};
  batch.island.memNodes = {1};
  return {db, batch};
}

TEST(IslandMapTest, TextShowsEveryCpuWithItsIsland) {
  Topology topology = loadFixture("two-socket.xml");
  std::string text = renderIslandMapText(topology, twoIslands());
  EXPECT_NE(text.find("NUMA node 0 (16384 MiB, CPUs 0-15)"), std::string::npos) << text;
  EXPECT_NE(text.find("[0:db 1:db]"), std::string::npos) << text;
  EXPECT_NE(text.find("[16:batch<&> 17:batch<&>]"), std::string::npos) << text;
  EXPECT_NE(text.find("[4:shared 5:shared]"), std::string::npos) << text;
  EXPECT_NE(text.find("db: CPUs 0-3, memory nodes 0, root, members 4242 (postgres)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("shared: CPUs 4-15,18-31"), std::string::npos) << text;
  EXPECT_EQ(count(text, "  L3:"), 4u) << text;
}

TEST(IslandMapTest, SvgColoursCpusAndListsMembers) {
  Topology topology = loadFixture("amd-four-node-multi-llc.xml");
  std::string svg = renderIslandMapSvg(topology, twoIslands());
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_NE(svg.find("</svg>\n"), std::string::npos);
  EXPECT_EQ(count(svg, "class=\"cpu\""), 64u);
  EXPECT_EQ(count(svg, "class=\"numa-node\""), 4u);
  EXPECT_EQ(count(svg, "class=\"l3\""), 8u);
  EXPECT_EQ(count(svg, "fill=\"#4477aa\""), 4u + 1u);  // db's CPUs and its legend
  EXPECT_EQ(count(svg, "fill=\"#ee6677\""), 2u + 1u);
  EXPECT_NE(svg.find("members 4242 (postgres)"), std::string::npos);
  EXPECT_NE(svg.find("batch&lt;&amp;&gt;"), std::string::npos);
  EXPECT_EQ(svg.find("batch<&>"), std::string::npos);
}

}  // namespace
}  // namespace Atoll::numa
