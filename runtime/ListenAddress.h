#pragma once
// A TCP listen address for the metrics endpoint: "IPv4:port" or "[IPv6]:port".
// Numeric hosts only, so that validating a configuration resolves no names.
#include <cstdint>
#include <string>
#include <string_view>

#include "util/Result.h"

namespace Atoll {

struct ListenAddress {
  std::string host;   // numeric IPv4 or IPv6 (without brackets)
  uint16_t port = 0;  // 0 asks the kernel for a free port
  bool ipv6 = false;

  static Result<ListenAddress> parse(std::string_view text);
  // The form parse() accepts, e.g. "127.0.0.1:9464" or "[::1]:9464".
  std::string toString() const;
  bool isLoopback() const;
  bool operator==(const ListenAddress&) const = default;
};

}  // namespace Atoll
