#pragma once
// What QEMU reports about a live migration (QMP `query-migrate`), parsed
// apart from the socket so the parsing is tested without a QEMU.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "util/Result.h"

namespace Atoll::qemu {

// QEMU has marked the migration completed but not yet stored its total
// time and downtime (our name for that moment; QEMU's reply says
// "completed" with both 0).
inline constexpr const char* kCompletingStatus = "completing";

struct MigrationStatus {
  // "none", "setup", "active", "device", "pre-switchover", "completed",
  // "failed", "cancelling", "cancelled", "postcopy-active", ...; and
  // kCompletingStatus. "none" also for a QEMU whose only migration was its
  // incoming one.
  std::string status;
  uint64_t totalTimeMs = 0;  // setup to completion (or so far)
  uint64_t downtimeMs = 0;   // measured, once completed
  uint64_t expectedDowntimeMs = 0;
  uint64_t setupTimeMs = 0;
  uint64_t ramTransferredBytes = 0;
  uint64_t ramRemainingBytes = 0;
  uint64_t ramTotalBytes = 0;
  uint64_t dirtySyncCount = 0;   // passes over guest RAM so far (the iteration)
  uint64_t dirtyPagesRate = 0;   // pages the guest dirties per second
  uint64_t pageSize = 0;         // bytes per page of the dirty rate
  double ramMbps = 0;            // QEMU's own send rate, Mbit/s (10^6)
  std::string errorDescription;  // set when status is "failed"

  bool finished() const {
    return status == "completed" || status == "failed" || status == "cancelled";
  }
  bool succeeded() const { return status == "completed"; }
  // Fraction of guest RAM already sent in this pass, 0..1 (1 once completed).
  double progress() const;
  // Seconds until the remaining RAM is sent at QEMU's current rate; negative
  // while QEMU has no rate to go by. Dirtying adds passes this cannot foresee.
  double etaSeconds() const;
};

// Parses the "return" object of `query-migrate`: the outgoing migration of
// the QEMU asked. Fields QEMU leaves out (it omits "ram" before the
// migration starts) stay zero; fields of the wrong type are an error naming
// them.
Result<MigrationStatus> parseQueryMigrate(const nlohmann::json& reply);

}  // namespace Atoll::qemu
