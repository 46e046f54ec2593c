#pragma once
// One line of the capability report: a kernel or host feature Atoll relies on,
// whether it works here, and what fixes it when it does not.
#include <string>
#include <string_view>

namespace Atoll::capability {

enum class FeatureStatus {
  Ok,        // probed and working
  Missing,   // a required feature is absent: Atoll cannot run correctly
  Degraded,  // works partly, or a recommended feature is absent
};

std::string_view toString(FeatureStatus status);

struct Feature {
  std::string name;  // stable identifier, e.g. "bpf.ringbuf"
  FeatureStatus status = FeatureStatus::Missing;
  bool required = false;
  std::string detail;  // what the probe saw, with numbers and paths
  std::string fix;     // kernel option or Debian package that fixes it; empty when ok

  static Feature ok(std::string name, bool required, std::string detail);
  // An absent feature: Missing when required, Degraded when only
  // recommended, so that "missing" always means Atoll cannot run correctly.
  static Feature absent(std::string name, bool required, std::string detail, std::string fix);
  static Feature degraded(std::string name, bool required, std::string detail, std::string fix);
};

}  // namespace Atoll::capability
