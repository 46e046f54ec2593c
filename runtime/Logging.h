#pragma once
// The daemon's logger: spdlog, asynchronous, to stderr (journald collects it
// under systemd). Lines are logfmt ("event=... key=value") so they can be
// filtered by field. The queue drops the oldest lines when full rather than
// block: a stalled stderr must never stall the tick.
#include <string_view>

#include "util/Result.h"

namespace Atoll {

// Installs the async stderr logger as spdlog's default.
void startDaemonLogging(std::string_view level);
// Validated by the config parser; unknown names leave the level unchanged.
void setLogLevel(std::string_view level);
// Flushes queued lines and stops the logging thread.
void stopDaemonLogging();

}  // namespace Atoll
