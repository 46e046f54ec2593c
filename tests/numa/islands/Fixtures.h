#pragma once
// Recorded hwloc topologies of bigger machines (see ../fixtures/README.md).
#include <gtest/gtest.h>

#include <string>

#include "numa/Topology.h"

namespace Atoll::numa::testing {

inline Topology loadFixture(const std::string& name) {
  auto topology = Topology::fromXmlFile(std::string(ATOLL_NUMA_FIXTURES) + "/" + name);
  EXPECT_TRUE(topology) << topology.error().message();
  return topology ? std::move(topology.value()) : Topology{};
}

}  // namespace Atoll::numa::testing
