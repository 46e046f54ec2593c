#pragma once
// The local API's endpoints (all JSON, all under /v1):
//   GET    /v1/status           daemon version, uptime, config, subsystems, ticks
//   GET    /v1/state            desired state (optional ?prefix=)
//   GET    /v1/state/{key}      one desired-state key
//   PUT    /v1/state/{key}      body {"value": ...}; answered once journaled
//   DELETE /v1/state/{key}
//   GET    /v1/facts, /v1/facts/{key}   facts this host publishes (read-only)
//   GET    /v1/workloads        the latest telemetry snapshot (`atoll top --json`)
//   GET    /v1/forecast/{vm}    a workload's forecast (?metric=cpu|memory|io|network);
//                               {vm} is its name, UUID, workload number or cgroup path
//   GET    /v1/history/{vm}     its recent CPU: actual vs the p50/p95 forecast a tick before
//   GET    /v1/islands/forecast the host, shared and configured islands' forecasts
//   GET    /v1/islands          desired and current islands, enforcement, topology
//   POST   /v1/islands          create an island: {"name", "cpus"|"count", "mems",
//                               "exclusivity", "limits", "selectors"}; 409 when it exists
//   PUT    /v1/islands/{name}   change one: cpus|grow|shrink, mems, exclusivity, limits,
//                               selectors; DELETE removes it (refused while pins hold it)
//   PUT    /v1/pins/{workload}  {"island": NAME, "source": "operator"|"planner"}; DELETE unpins
//                               (island and pin changes are validated whole, then stored as
//                               desired state, and applied by the islands subsystem)
//   GET    /v1/plan             the planner's latest pass: islands, decisions, explanations
//   GET    /v1/plan/history     the recent decision records, taken and declined, newest last
//   GET    /v1/plan/tuning      the planner's margin and trust, with each change and its reason
//   POST   /v1/transfers        body {"file", "peer", ...}: pre-copy a file to a peer; 201 {"id"}
//   GET    /v1/transfers        every transfer (bytes, rate, round, state), the host cap, receipts
//   PUT    /v1/transfers/host-bwlimit   body {"bwlimit": "100M"}: the host cap, live
//   DELETE /v1/transfers/{id}   cancel a running transfer
//   POST   /v1/migrations/incoming  on the destination host: {"qmp": PATH} (QEMU started with
//                               -incoming defer: hand-off) or {"unix": PATH} (its -incoming
//                               unix:PATH: relay), "expires_s"; 201 {"tunnel_id", "port"};
//                               503 without [transfer] listen
//   GET    /v1/migrations/incoming  the destinations registered; DELETE .../{tunnel_id} removes one
//   POST   /v1/migrations       on the source host: {"qmp", "peer", "tunnel_id", "channels",
//                               "bwlimit", "downtime_limit_ms", "relay", "timeout_s"}:
//                               live-migrate that QEMU through the tunnel; 201 {"id", "mode",
//                               "tunnel_id"}, 502 when QEMU or the peer cannot be reached,
//                               409 when QEMU refuses; 202 {"id", "state": "starting"} when
//                               the start outlasts the API's deadline (GET then shows it
//                               running, or failed and why)
//   GET    /v1/migrations       every migration, failed starts too: state (starting, running,
//                               completed, failed, cancelled), QEMU's figures, tunnel bytes,
//                               summary, error
//   DELETE /v1/migrations/{id}  cancel a starting or running migration (migrate_cancel; the VM
//                               stays here)
// Every request is first checked against the AccessPolicy with the peer's
// kernel credentials: refused peers get 403 for everything. Errors are
// {"error": "reason"} with a 4xx/5xx status.
#include <httplib.h>

#include <functional>
#include <nlohmann/json.hpp>

#include "runtime/DaemonMetrics.h"
#include "runtime/ForecastSubsystem.h"
#include "runtime/IslandSubsystem.h"
#include "runtime/PeerCredentials.h"
#include "runtime/PlannerSubsystem.h"
#include "runtime/StateStore.h"
#include "runtime/TransferSubsystem.h"
#include "runtime/UnixHttpServer.h"
#include "runtime/WorkloadBoard.h"

namespace Atoll {

struct ApiContext {
  StateStore& store;
  AccessPolicy policy;
  std::function<nlohmann::json()> status;
  DaemonMetrics* metrics = nullptr;  // optional
  size_t maxBodyBytes = 64 * 1024;   // named in 413 replies
  // The main job's views; absent ones answer 503 with the reason.
  const WorkloadBoard* workloads = nullptr;
  const ForecastSubsystem* forecast = nullptr;
  const IslandSubsystem* islands = nullptr;
  const PlannerSubsystem* planner = nullptr;
  TransferSubsystem* transfers = nullptr;
};

// `context` must outlive the server.
void installApiRoutes(UnixHttpServer& server, ApiContext& context);

}  // namespace Atoll
