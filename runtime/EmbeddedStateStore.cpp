#include "runtime/EmbeddedStateStore.h"

#include <mutex>

namespace Atoll {

std::string_view keyspaceName(Keyspace keyspace) {
  return keyspace == Keyspace::Desired ? "desired" : "facts";
}

namespace {

std::optional<Keyspace> keyspaceFromName(const nlohmann::json& name) {
  if (name == "desired") return Keyspace::Desired;
  if (name == "facts") return Keyspace::Facts;
  return std::nullopt;
}

Error recordError(uint64_t sequence, const nlohmann::json& record, std::string detail) {
  return Error::invalid("apply journal record " + std::to_string(sequence), "",
                        record.dump().substr(0, 200), std::move(detail));
}

nlohmann::json originJson(const ChangeOrigin& origin) {
  return {{"uid", origin.uid}, {"pid", origin.pid}, {"via", origin.via}};
}

}  // namespace

uint64_t EmbeddedStateStore::revision() const {
  std::shared_lock lock(mutex_);
  return revision_;
}

size_t EmbeddedStateStore::size(Keyspace keyspace) const {
  std::shared_lock lock(mutex_);
  return mapFor(keyspace).size();
}

Result<std::optional<StateEntry>> EmbeddedStateStore::get(Keyspace keyspace,
                                                          const std::string& key) const {
  std::shared_lock lock(mutex_);
  const Map& map = mapFor(keyspace);
  auto it = map.find(key);
  if (it == map.end()) return std::optional<StateEntry>{};
  return std::optional<StateEntry>(StateEntry{key, it->second.value, it->second.revision});
}

Result<std::vector<StateEntry>> EmbeddedStateStore::list(Keyspace keyspace,
                                                         std::string_view prefix) const {
  std::shared_lock lock(mutex_);
  std::vector<StateEntry> out;
  const Map& map = mapFor(keyspace);
  for (auto it = map.lower_bound(prefix); it != map.end(); ++it) {
    if (it->first.compare(0, prefix.size(), prefix) != 0) break;
    out.push_back(StateEntry{it->first, it->second.value, it->second.revision});
  }
  return out;
}

Result<uint64_t> EmbeddedStateStore::put(Keyspace keyspace, const std::string& key,
                                         nlohmann::json value, const ChangeOrigin& origin) {
  if (journal_ == nullptr)
    return Error::invalid("put", key, "", "the store is not attached to a journal");
  nlohmann::json record = {{"type", "state.put"},
                           {"keyspace", keyspaceName(keyspace)},
                           {"key", key},
                           {"value", std::move(value)},
                           {"origin", originJson(origin)}};
  return journal_->transact([&](HostJournal::Transaction& txn) -> Result<uint64_t> {
    auto sequence = txn.commit(record);
    if (!sequence) return sequence.error();
    if (auto applied = apply(*sequence, record); !applied) return applied.error();
    return *sequence;
  });
}

Result<std::optional<uint64_t>> EmbeddedStateStore::remove(Keyspace keyspace,
                                                           const std::string& key,
                                                           const ChangeOrigin& origin) {
  if (journal_ == nullptr)
    return Error::invalid("remove", key, "", "the store is not attached to a journal");
  nlohmann::json record = {{"type", "state.delete"},
                           {"keyspace", keyspaceName(keyspace)},
                           {"key", key},
                           {"origin", originJson(origin)}};
  return journal_->transact([&](HostJournal::Transaction& txn) -> Result<std::optional<uint64_t>> {
    {
      // Writers are serialized by the journal lock, so the key cannot appear
      // or vanish between this check and the commit.
      std::shared_lock lock(mutex_);
      if (!mapFor(keyspace).contains(key)) return std::optional<uint64_t>{};
    }
    auto sequence = txn.commit(record);
    if (!sequence) return sequence.error();
    if (auto applied = apply(*sequence, record); !applied) return applied.error();
    return std::optional<uint64_t>(*sequence);
  });
}

Result<void> EmbeddedStateStore::apply(uint64_t sequence, const nlohmann::json& record) {
  const auto& type = record.at("type");
  if (!record.contains("keyspace") || !record.contains("key") || !record["key"].is_string())
    return recordError(sequence, record, "missing keyspace or key");
  auto keyspace = keyspaceFromName(record["keyspace"]);
  if (!keyspace) return recordError(sequence, record, "unknown keyspace");
  const std::string& key = record["key"].get_ref<const std::string&>();
  std::unique_lock lock(mutex_);
  if (type == "state.put") {
    if (!record.contains("value")) return recordError(sequence, record, "missing value");
    mapFor(*keyspace)[key] = Value{record["value"], sequence};
  } else if (type == "state.delete") {
    mapFor(*keyspace).erase(key);
  } else {
    return recordError(sequence, record, "unknown state record type");
  }
  revision_ = sequence;
  return ok();
}

Result<void> EmbeddedStateStore::restore(const nlohmann::json& section) {
  Map desired;
  Map facts;
  uint64_t revision = 0;
  auto load = [](const nlohmann::json& entries, Map& into) -> bool {
    if (!entries.is_object()) return false;
    for (const auto& [key, entry] : entries.items()) {
      if (!entry.is_object() || !entry.contains("value") || !entry.contains("revision") ||
          !entry["revision"].is_number_unsigned())
        return false;
      into[key] = Value{entry["value"], entry["revision"].get<uint64_t>()};
    }
    return true;
  };
  if (!section.empty()) {
    if (!section.is_object() || !section.contains("revision") ||
        !section["revision"].is_number_unsigned() ||
        !load(section.value("desired", nlohmann::json::object()), desired) ||
        !load(section.value("facts", nlohmann::json::object()), facts))
      return Error::invalid("restore snapshot section", "state", section.dump().substr(0, 200),
                            "malformed state section");
    revision = section["revision"].get<uint64_t>();
  }
  std::unique_lock lock(mutex_);
  desired_ = std::move(desired);
  facts_ = std::move(facts);
  revision_ = revision;
  return ok();
}

nlohmann::json EmbeddedStateStore::snapshot() const {
  std::shared_lock lock(mutex_);
  auto dump = [](const Map& map) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [key, value] : map)
      out[key] = {{"value", value.value}, {"revision", value.revision}};
    return out;
  };
  return {{"revision", revision_}, {"desired", dump(desired_)}, {"facts", dump(facts_)}};
}

}  // namespace Atoll
