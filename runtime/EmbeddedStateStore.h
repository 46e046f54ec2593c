#pragma once
// The single-host state store: keys live in memory, every change is a
// "state.put" / "state.delete" record in the host journal (durable before the
// call returns), and compaction folds them into the snapshot's "state"
// section.
#include <map>
#include <shared_mutex>

#include "runtime/HostJournal.h"
#include "runtime/StateStore.h"

namespace Atoll {

class EmbeddedStateStore final : public StateStore, public JournalConsumer {
 public:
  EmbeddedStateStore() = default;
  // Must be called once, after HostJournal::open() replayed into this store.
  void attach(HostJournal& journal) { journal_ = &journal; }

  // StateStore
  std::string_view kind() const override { return "embedded"; }
  uint64_t revision() const override;
  Result<std::optional<StateEntry>> get(Keyspace keyspace, const std::string& key) const override;
  Result<std::vector<StateEntry>> list(Keyspace keyspace, std::string_view prefix) const override;
  Result<uint64_t> put(Keyspace keyspace, const std::string& key, nlohmann::json value,
                       const ChangeOrigin& origin) override;
  Result<std::optional<uint64_t>> remove(Keyspace keyspace, const std::string& key,
                                         const ChangeOrigin& origin) override;

  size_t size(Keyspace keyspace) const;

  // JournalConsumer
  std::string_view section() const override { return "state"; }
  Result<void> restore(const nlohmann::json& section) override;
  Result<void> apply(uint64_t sequence, const nlohmann::json& record) override;
  nlohmann::json snapshot() const override;

 private:
  struct Value {
    nlohmann::json value;
    uint64_t revision = 0;
  };
  using Map = std::map<std::string, Value, std::less<>>;
  Map& mapFor(Keyspace keyspace) { return keyspace == Keyspace::Desired ? desired_ : facts_; }
  const Map& mapFor(Keyspace keyspace) const {
    return keyspace == Keyspace::Desired ? desired_ : facts_;
  }

  HostJournal* journal_ = nullptr;
  mutable std::shared_mutex mutex_;
  Map desired_;
  Map facts_;
  uint64_t revision_ = 0;
};

}  // namespace Atoll
