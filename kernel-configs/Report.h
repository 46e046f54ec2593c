#pragma once
// The capability report: every probed feature of one host, and its renderings
// for operators (a text table) and for machines (JSON of a fixed shape:
// {"kernel", "features": [{"name","status","required","detail","fix"}],
//  "summary": {"ok","missing","degraded"}}). `atoll check --json` adds
// "telemetry_signals": [{"signal","source","available","reason"}].
#include <cstddef>
#include <string>
#include <vector>

#include "kernel-configs/Feature.h"

namespace Atoll::capability {

struct Summary {
  std::size_t ok = 0;
  std::size_t missing = 0;
  std::size_t degraded = 0;
};

struct Report {
  std::string kernel;  // uname -r
  std::vector<Feature> features;

  Summary summary() const;
  // Names of required features whose status is Missing.
  std::vector<std::string> missingRequired() const;
  // True when every required feature is present (ok or degraded).
  bool requiredSatisfied() const { return missingRequired().empty(); }
};

std::string renderJson(const Report& report);
std::string renderText(const Report& report);

}  // namespace Atoll::capability
