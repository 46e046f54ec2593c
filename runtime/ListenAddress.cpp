#include "runtime/ListenAddress.h"

#include <arpa/inet.h>

#include <charconv>

namespace Atoll {

namespace {

Error addressError(std::string_view text, std::string detail) {
  return Error::invalid("parse listen address", "", std::string(text), std::move(detail));
}

}  // namespace

Result<ListenAddress> ListenAddress::parse(std::string_view text) {
  const std::string expected = "expected IPv4:port or [IPv6]:port, e.g. 127.0.0.1:9464";
  ListenAddress out;
  std::string_view portText;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return addressError(text, expected);
    out.host = std::string(text.substr(1, close - 1));
    out.ipv6 = true;
    portText = text.substr(close + 2);
    in6_addr probe{};
    if (::inet_pton(AF_INET6, out.host.c_str(), &probe) != 1)
      return addressError(text, "'" + out.host + "' is not a numeric IPv6 address");
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos || text.find(':') != colon)
      return addressError(text, expected);
    out.host = std::string(text.substr(0, colon));
    portText = text.substr(colon + 1);
    in_addr probe{};
    if (::inet_pton(AF_INET, out.host.c_str(), &probe) != 1)
      return addressError(text, "'" + out.host + "' is not a numeric IPv4 address");
  }
  unsigned port = 0;
  auto [end, ec] = std::from_chars(portText.data(), portText.data() + portText.size(), port);
  if (portText.empty() || ec != std::errc() || end != portText.data() + portText.size() ||
      port > 65535)
    return addressError(text, "port '" + std::string(portText) + "' is not 0..65535");
  out.port = static_cast<uint16_t>(port);
  return out;
}

std::string ListenAddress::toString() const {
  std::string hostPart = ipv6 ? "[" + host + "]" : host;
  return hostPart + ":" + std::to_string(port);
}

bool ListenAddress::isLoopback() const {
  if (ipv6) return host == "::1";
  in_addr addr{};
  if (::inet_pton(AF_INET, host.c_str(), &addr) != 1) return false;
  return (ntohl(addr.s_addr) >> 24) == 127;
}

}  // namespace Atoll
