#pragma once
// Validation of what clients send to the local API, separate from the HTTP
// plumbing so the fuzz target and unit tests call exactly what the routes
// call. Every rejection names the offending value.
#include <httplib.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>

#include "runtime/PeerCredentials.h"
#include "util/Result.h"

namespace Atoll {

inline constexpr size_t kMaxStateKeyBytes = 256;

// Keys are 1-256 bytes of [A-Za-z0-9._:/-], '/'-separated segments, none of
// them empty, "." or "..".
Result<void> validateStateKey(std::string_view key);

// A PUT body: a JSON object {"value": <any JSON>} and nothing else.
Result<nlohmann::json> parseStatePutBody(std::string_view body, std::string_view contentType);

// A JSON request body (Content-Type application/json or none); errors name
// the offending text.
Result<nlohmann::json> parseJsonBody(std::string_view body, std::string_view contentType);

// The peer identity UnixHttpServer attached to the request; nullopt when it is
// missing or malformed (then the request is refused).
std::optional<PeerCredentials> peerFromRequest(const httplib::Request& request);

}  // namespace Atoll
