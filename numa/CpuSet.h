#pragma once
// The kernel's list format for CPU and node sets ("0-3,8,10-11", as in
// cpuset.cpus, cpuset.mems and sysfs), parsed into sorted numbers, and the
// few set operations island placement needs.
#include <string>
#include <string_view>

#include "numa/Topology.h"
#include "util/Result.h"

namespace Atoll::numa {

// Parses "0-3,8" (spaces around items and dashes allowed); an empty or
// all-whitespace text is the empty set. `what` names the source ("--cpus",
// a control file path) in errors.
Result<CpuList> parseCpuList(std::string_view text, const std::string& what);

CpuList unionOf(const CpuList& a, const CpuList& b);
CpuList intersectionOf(const CpuList& a, const CpuList& b);
CpuList differenceOf(const CpuList& a, const CpuList& b);
bool contains(const CpuList& set, unsigned value);

}  // namespace Atoll::numa
