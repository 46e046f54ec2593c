#pragma once
// The daemon's Prometheus registry and its HTTP endpoint. The daemon's own
// health series live here (tick duration, overruns, API requests, reloads);
// each subsystem registers its own series in the same registry.
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "runtime/ListenAddress.h"
#include "runtime/TickScheduler.h"
#include "util/Result.h"

namespace prometheus {
class Exposer;
}

namespace Atoll {

class DaemonMetrics {
 public:
  explicit DaemonMetrics(const std::string& version);
  ~DaemonMetrics();

  prometheus::Registry& registry() { return *registry_; }

  // Serves /metrics on `address` (port 0 picks a free port).
  Result<void> expose(const ListenAddress& address);
  // The bound port, once exposed.
  std::optional<uint16_t> port() const { return port_; }

  void recordTick(const TickReport& report);
  void recordMissedTicks(uint64_t missed);
  void recordApiRequest(const std::string& method, int status);
  void recordReload(bool accepted);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::optional<uint16_t> port_;

  prometheus::Histogram* tickDuration_;
  prometheus::Counter* ticks_;
  prometheus::Counter* ticksMissed_;
  prometheus::Family<prometheus::Gauge>* phaseSeconds_;
  prometheus::Family<prometheus::Counter>* overruns_;
  prometheus::Family<prometheus::Counter>* skips_;
  prometheus::Family<prometheus::Counter>* failures_;
  prometheus::Family<prometheus::Counter>* apiRequests_;
  prometheus::Family<prometheus::Counter>* reloads_;
  std::mutex apiMutex_;  // Family::Add is thread-safe; the cache below is not
  std::map<std::pair<std::string, int>, prometheus::Counter*> apiCounters_;
  // Series used every tick, looked up once (Family::Add hashes the labels and
  // takes a lock each time). Only the main loop touches these.
  struct SubsystemSeries {
    prometheus::Counter* overruns = nullptr;
    prometheus::Counter* skips = nullptr;
    std::map<Phase, std::pair<prometheus::Gauge*, prometheus::Counter*>> phases;
  };
  std::map<std::string, SubsystemSeries, std::less<>> subsystemSeries_;
};

}  // namespace Atoll
