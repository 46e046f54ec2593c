#pragma once
// The local API's endpoints (all JSON, all under /v1):
//   GET    /v1/status           daemon version, uptime, config, subsystems, ticks
//   GET    /v1/state            desired state (optional ?prefix=)
//   GET    /v1/state/{key}      one desired-state key
//   PUT    /v1/state/{key}      body {"value": ...}; answered once journaled
//   DELETE /v1/state/{key}
//   GET    /v1/facts, /v1/facts/{key}   facts this host publishes (read-only)
// Every request is first checked against the AccessPolicy with the peer's
// kernel credentials: refused peers get 403 for everything. Errors are
// {"error": "reason"} with a 4xx/5xx status.
#include <httplib.h>

#include <functional>
#include <nlohmann/json.hpp>

#include "runtime/DaemonMetrics.h"
#include "runtime/PeerCredentials.h"
#include "runtime/StateStore.h"
#include "runtime/UnixHttpServer.h"

namespace Atoll {

struct ApiContext {
  StateStore& store;
  AccessPolicy policy;
  std::function<nlohmann::json()> status;
  DaemonMetrics* metrics = nullptr;  // optional
  size_t maxBodyBytes = 64 * 1024;   // named in 413 replies
};

// `context` must outlive the server.
void installApiRoutes(UnixHttpServer& server, ApiContext& context);

}  // namespace Atoll
