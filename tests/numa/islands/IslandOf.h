#pragma once
// An island with just a name, CPUs and memory nodes, as most island tests
// need one.
#include <string>
#include <utility>

#include "numa/Island.h"

namespace Atoll::numa::testing {

inline Island island(std::string name, CpuList cpus, CpuList nodes) {
  Island out;
  out.name = std::move(name);
  out.cpus = std::move(cpus);
  out.memNodes = std::move(nodes);
  return out;
}

}  // namespace Atoll::numa::testing
