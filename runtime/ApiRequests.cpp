#include "runtime/ApiRequests.h"

#include <charconv>

#include "runtime/UnixHttpServer.h"

namespace Atoll {

namespace {

Error requestError(std::string what, std::string value, std::string detail) {
  return Error::invalid(std::move(what), "", std::move(value), std::move(detail));
}

std::string excerpt(std::string_view text) {
  constexpr size_t kShown = 64;
  std::string out(text.substr(0, kShown));
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  if (text.size() > kShown) out += "...";
  return out;
}

template <typename T>
bool parseNumber(std::string_view text, T& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return !text.empty() && ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

Result<void> validateStateKey(std::string_view key) {
  if (key.empty()) return requestError("state key", "", "the key is empty");
  if (key.size() > kMaxStateKeyBytes)
    return requestError("state key", excerpt(key),
                        "the key is " + std::to_string(key.size()) + " bytes; at most " +
                            std::to_string(kMaxStateKeyBytes) + " are allowed");
  for (char c : key) {
    bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '.' || c == '_' || c == '-' || c == ':' || c == '/';
    if (!allowed)
      return requestError("state key", excerpt(key),
                          "only letters, digits and . _ - : / are allowed");
  }
  size_t start = 0;
  while (start <= key.size()) {
    size_t slash = key.find('/', start);
    if (slash == std::string_view::npos) slash = key.size();
    std::string_view segment = key.substr(start, slash - start);
    if (segment.empty() || segment == "." || segment == "..")
      return requestError("state key", excerpt(key),
                          "'/'-separated segments must not be empty, '.' or '..'");
    start = slash + 1;
  }
  return ok();
}

Result<nlohmann::json> parseStatePutBody(std::string_view body, std::string_view contentType) {
  if (!contentType.empty() && contentType.substr(0, 16) != "application/json")
    return requestError("request body", excerpt(contentType),
                        "Content-Type must be application/json");
  auto parsed = nlohmann::json::parse(body, nullptr, false);
  if (parsed.is_discarded()) return requestError("request body", excerpt(body), "not valid JSON");
  if (!parsed.is_object())
    return requestError(
        "request body", excerpt(body),
        std::string("expected a JSON object {\"value\": ...}, got ") + parsed.type_name());
  if (!parsed.contains("value"))
    return requestError("request body", excerpt(body), "missing the \"value\" field");
  for (const auto& [name, field] : parsed.items())
    if (name != "value")
      return requestError("request body", excerpt(name),
                          "unknown field; only \"value\" is allowed");
  return std::move(parsed["value"]);
}

Result<nlohmann::json> parseJsonBody(std::string_view body, std::string_view contentType) {
  if (!contentType.empty() && contentType.substr(0, 16) != "application/json")
    return requestError("request body", excerpt(contentType),
                        "Content-Type must be application/json");
  auto parsed = nlohmann::json::parse(body, nullptr, false);
  if (parsed.is_discarded()) return requestError("request body", excerpt(body), "not valid JSON");
  return parsed;
}

Result<nlohmann::json> parseJsonObjectBody(std::string_view body, std::string_view what) {
  nlohmann::json document = nlohmann::json::parse(body, nullptr, false);
  if (document.is_discarded() || !document.is_object()) {
    return Error::invalid("parse", "", std::string(what), "the body must be a JSON object");
  }
  return document;
}

Error requestFieldError(std::string_view request, std::string_view field,
                        const nlohmann::json& value, std::string detail) {
  return Error::invalid(std::string(request) + " field \"" + std::string(field) + "\"", "",
                        value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                        std::move(detail));
}

Result<std::string> requestStringField(std::string_view request, std::string_view field,
                                       const nlohmann::json& value) {
  if (!value.is_string()) return requestFieldError(request, field, value, "expected a string");
  std::string text = value.get<std::string>();
  if (text.find('\0') != std::string::npos) {
    return requestFieldError(request, field, value, "holds a NUL byte");
  }
  return text;
}

std::optional<PeerCredentials> peerFromRequest(const httplib::Request& request) {
  PeerCredentials peer;
  if (!request.has_header(UnixHttpServer::kPeerUidHeader)) return std::nullopt;
  if (!parseNumber(request.get_header_value(UnixHttpServer::kPeerUidHeader), peer.uid) ||
      !parseNumber(request.get_header_value(UnixHttpServer::kPeerGidHeader), peer.gid) ||
      !parseNumber(request.get_header_value(UnixHttpServer::kPeerPidHeader), peer.pid))
    return std::nullopt;
  std::string groups = request.get_header_value(UnixHttpServer::kPeerGroupsHeader);
  std::string_view rest = groups;
  while (!rest.empty()) {
    size_t comma = rest.find(',');
    gid_t g = 0;
    if (!parseNumber(rest.substr(0, comma), g)) return std::nullopt;
    peer.groups.push_back(g);
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
  }
  return peer;
}

}  // namespace Atoll
