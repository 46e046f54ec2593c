#pragma once
// Validation of what clients send to the local API, separate from the HTTP
// plumbing so the fuzz target and unit tests call exactly what the routes
// call. Every rejection names the offending value.
#include <httplib.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
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

// A body that must be a JSON object; `what` names the request in the error
// ("POST /v1/transfers").
Result<nlohmann::json> parseJsonObjectBody(std::string_view body, std::string_view what);

// An error about one field of a JSON request body, naming the request
// ("transfer request"), the field and its value as sent.
Error requestFieldError(std::string_view request, std::string_view field,
                        const nlohmann::json& value, std::string detail);

// A string field without NUL bytes (which no path or name may hold).
Result<std::string> requestStringField(std::string_view request, std::string_view field,
                                       const nlohmann::json& value);

// The peer identity UnixHttpServer attached to the request; nullopt when it is
// missing or malformed (then the request is refused).
std::optional<PeerCredentials> peerFromRequest(const httplib::Request& request);

}  // namespace Atoll
