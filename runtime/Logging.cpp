#include "runtime/Logging.h"

#include <spdlog/async.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <string>

namespace Atoll {

void startDaemonLogging(std::string_view level) {
  constexpr size_t kQueueLines = 8192;
  spdlog::init_thread_pool(kQueueLines, 1);
  auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  auto logger = std::make_shared<spdlog::async_logger>(
      "atolld", sink, spdlog::thread_pool(), spdlog::async_overflow_policy::overrun_oldest);
  // journald stamps each line itself; elsewhere the timestamp is ours.
  if (std::getenv("JOURNAL_STREAM") != nullptr)
    logger->set_pattern("level=%l %v");
  else
    logger->set_pattern("ts=%Y-%m-%dT%H:%M:%S.%e%z level=%l %v");
  // The stderr sink flushes every line it writes, so no periodic flusher:
  // its wake-ups were most of the idle daemon's CPU time.
  spdlog::set_default_logger(std::move(logger));
  setLogLevel(level);
}

void setLogLevel(std::string_view level) {
  auto parsed = spdlog::level::from_str(std::string(level));
  if (parsed == spdlog::level::off && level != "off") return;
  spdlog::set_level(parsed);
}

void stopDaemonLogging() {
  spdlog::default_logger()->flush();
  spdlog::shutdown();
}

}  // namespace Atoll
