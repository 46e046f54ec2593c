#pragma once
// One received session as JSON: what `atoll transfer serve --json` prints per
// session and what atolld lists under GET /v1/transfers "received".
#include <nlohmann/json.hpp>
#include <string>

#include "migrate/transfer/ImageReceiver.h"
#include "util/Result.h"

namespace Atoll::transfer {

inline nlohmann::json receivedSessionJson(const std::string& peer,
                                          const Result<ReceiveReport>& result) {
  nlohmann::json out{{"peer", peer}, {"ok", result.has_value()}};
  if (result) {
    out["path"] = result->finalPath;
    out["committed"] = result->committed;
    out["resumed"] = result->resumed;
    out["rounds"] = result->rounds;
    out["bytes_written"] = result->bytesWritten;
    out["record_layer"] = result->recordLayer;
    out["cpu"] = result->cpu;  // -1: not placed
  } else {
    out["error"] = result.error().message();
  }
  return out;
}

}  // namespace Atoll::transfer
