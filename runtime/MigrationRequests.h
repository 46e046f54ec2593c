#pragma once
// The bodies of the daemon's migration routes, validated whole before
// anything is registered or started: POST /v1/migrations (the source host
// drives a live migration of a local QEMU through the tunnel) and POST
// /v1/migrations/incoming (the destination host registers the QEMU that
// waits for one). Every refusal names the field and its value.
#include <chrono>
#include <cstdint>
#include <string_view>

#include "migrate/transfer/QemuMigration.h"
#include "migrate/transfer/TunnelDestinations.h"
#include "util/Result.h"

namespace Atoll {

// The longest a registered destination waits for its migration.
inline constexpr int64_t kMaxIncomingLifetimeSeconds = 86400;
inline constexpr int64_t kDefaultIncomingLifetimeSeconds = 600;
// The longest timeout_s a migration takes: a week, far beyond any migration
// that still converges, and small enough that no clock arithmetic overflows.
inline constexpr double kMaxMigrationTimeoutSeconds = 7 * 86400.0;

// What POST /v1/migrations asks for, validated.
struct MigrationRequest {
  transfer::QemuMigrationRequest migration;
  std::chrono::milliseconds timeout{0};  // 0: none
};

// The body of POST /v1/migrations: a JSON object
//   {"qmp": "/abs/path", "peer": "HOST:PORT", "tunnel_id": "hex", "channels": 1-64,
//    "bwlimit": "1G" or bytes/s (above 0), "downtime_limit_ms": QEMU's downtime-limit
//    (1-2000000), "relay": bool, "timeout_s": seconds (0: none)}
// of which qmp and peer are required. Without downtime_limit_ms the host's
// [transfer] downtime_limit_ms applies when the migration starts
// (MigrationJobs), so the request keeps it 0 here. Whether QEMU answers on the socket is
// left to the start itself, which reports it as such.
Result<MigrationRequest> parseMigrationRequest(std::string_view body);

// What POST /v1/migrations/incoming registers, validated.
struct IncomingMigrationRequest {
  transfer::TunnelDestination destination;
  std::chrono::seconds lifetime{kDefaultIncomingLifetimeSeconds};
};

// The body of POST /v1/migrations/incoming: {"qmp": "/abs/path"} (hand-off:
// the destination QEMU's QMP socket, QEMU started with `-incoming defer`) or
// {"unix": "/abs/path"} (relay: its `-incoming unix:PATH`), and optionally
// "expires_s" (1-86400). The path must exist and be a socket now: a
// destination registered before its QEMU started would only fail later, on
// the source host, where the cause is harder to see.
Result<IncomingMigrationRequest> parseIncomingMigrationRequest(std::string_view body);

// A migration id as it appears in a URL.
Result<uint64_t> parseMigrationId(std::string_view text);

}  // namespace Atoll
