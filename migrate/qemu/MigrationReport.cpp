#include "migrate/qemu/MigrationReport.h"

#include <cstdio>

namespace Atoll::qemu {

namespace {

std::string mib(uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return text;
}

std::string format(const char* pattern, double value) {
  char text[64];
  std::snprintf(text, sizeof text, pattern, value);
  return text;
}

// A moment of the tunnel's timeline; null where it was not reached.
nlohmann::json moment(double milliseconds) {
  if (milliseconds < 0) return nullptr;
  return milliseconds;
}

}  // namespace

std::string formatProgressLine(const MigrationStatus& status, const TunnelFigures& tunnel) {
  std::string line = status.status;
  line += "  pass " + std::to_string(status.dirtySyncCount);
  line += "  RAM " + mib(status.ramTransferredBytes) + " sent, " + mib(status.ramRemainingBytes) +
          " of " + mib(status.ramTotalBytes) + " left";
  line += format("  QEMU %.0f Mbit/s", status.ramMbps);
  line += "  dirty " + std::to_string(status.dirtyPagesRate) + " pages/s";
  line += "  tunnel " + mib(tunnel.bytesToPeer);
  double eta = status.etaSeconds();
  line += eta < 0 ? std::string("  ETA -") : format("  ETA %.1f s", eta);
  return line;
}

std::string formatSummary(const MigrationStatus& status, const TunnelFigures& tunnel) {
  std::string text = "migration " + status.status;
  if (!status.errorDescription.empty()) text += ": " + status.errorDescription;
  text += "\n";
  text += "  QEMU: total " + std::to_string(status.totalTimeMs) + " ms, setup " +
          std::to_string(status.setupTimeMs) + " ms, downtime " +
          std::to_string(status.downtimeMs) + " ms, " + std::to_string(status.dirtySyncCount) +
          " passes\n";
  text +=
      "  RAM: " + mib(status.ramTransferredBytes) + " sent of " + mib(status.ramTotalBytes) + "\n";
  text += std::string("  tunnel") +
          (tunnel.mode == "relay" ? "" : " (" + tunnel.mode + ", QEMU to QEMU)") + ": " +
          mib(tunnel.bytesToPeer) + " to the peer (" + std::to_string(tunnel.bytesToPeer) +
          " bytes) over " + std::to_string(tunnel.connections) + " connection" +
          (tunnel.connections == 1 ? "" : "s") + "\n";
  if (tunnel.localAcceptedMs >= 0) {
    auto at = [](double ms) { return ms < 0 ? std::string("-") : format("%.1f ms", ms); };
    text += "  tunnel timeline: destination reached " + at(tunnel.peerAckedMs) +
            ", QEMU connected " + at(tunnel.localAcceptedMs) + ", first byte " +
            at(tunnel.firstByteMs) + ", last byte " + at(tunnel.lastByteMs) + ", closed " +
            at(tunnel.closedMs) + "\n";
  }
  return text;
}

nlohmann::json summaryJson(const MigrationStatus& status, const TunnelFigures& tunnel) {
  nlohmann::json out{{"status", status.status},
                     {"total_time_ms", status.totalTimeMs},
                     {"setup_time_ms", status.setupTimeMs},
                     {"downtime_ms", status.downtimeMs},
                     {"passes", status.dirtySyncCount},
                     {"ram_transferred_bytes", status.ramTransferredBytes},
                     {"ram_total_bytes", status.ramTotalBytes},
                     {"tunnel",
                      {{"mode", tunnel.mode},
                       {"bytes_to_peer", tunnel.bytesToPeer},
                       {"bytes_from_peer", tunnel.bytesFromPeer},
                       {"connections", tunnel.connections},
                       {"timeline_ms",
                        {{"destination_reached", moment(tunnel.peerAckedMs)},
                         {"qemu_connected", moment(tunnel.localAcceptedMs)},
                         {"first_byte", moment(tunnel.firstByteMs)},
                         {"last_byte", moment(tunnel.lastByteMs)},
                         {"closed", moment(tunnel.closedMs)}}}}}};
  if (!status.errorDescription.empty()) out["error"] = status.errorDescription;
  return out;
}

}  // namespace Atoll::qemu
