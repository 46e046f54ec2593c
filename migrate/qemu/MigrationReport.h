#pragma once
// What an operator sees of a tunnelled live migration: a progress line while
// it runs and a summary at its end (text or JSON), made from QEMU's own
// report (query-migrate) and the tunnel's counters. Kept apart from QMP and
// the tunnel so the wording and the figures are tested without either.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "migrate/qemu/MigrationStatus.h"

namespace Atoll::qemu {

// The tunnel's side of a migration, in plain figures.
struct TunnelFigures {
  // "relay": Atoll carries QEMU's stream between its own sockets;
  // "hand-off": QEMU migrates over the connection Atoll prepared, and the
  // byte counts are the kernel's for that connection.
  std::string mode = "relay";
  uint64_t bytesToPeer = 0;
  uint64_t bytesFromPeer = 0;
  uint32_t connections = 0;  // QEMU connections carried
  // Moments of QEMU's main channel in milliseconds since the tunnel was
  // created; negative: not reached.
  double peerAckedMs = -1;      // the prepared connection reached the destination
  double localAcceptedMs = -1;  // QEMU connected to the tunnel
  double firstByteMs = -1;      // QEMU's first byte passed on
  double lastByteMs = -1;       // QEMU's last byte passed on
  double closedMs = -1;         // the connection ended both ways
};

// One line, no newline: status, pass, RAM sent / total and left, QEMU's rate,
// dirty rate, bytes through the tunnel, ETA.
std::string formatProgressLine(const MigrationStatus& status, const TunnelFigures& tunnel);

// Several lines, each ending in a newline: outcome (QEMU's error when it
// failed), QEMU's total, setup and down time, RAM and tunnel bytes, the
// tunnel's timeline.
std::string formatSummary(const MigrationStatus& status, const TunnelFigures& tunnel);

// The same summary as one JSON object.
nlohmann::json summaryJson(const MigrationStatus& status, const TunnelFigures& tunnel);

}  // namespace Atoll::qemu
