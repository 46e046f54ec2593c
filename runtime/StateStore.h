#pragma once
// Where the daemon keeps desired state (what operators and the planner ask
// for) and facts (what this host reports for others to see). The embedded
// single-host implementation (EmbeddedStateStore: journal plus snapshot) is
// the default; a store shared by many hosts (etcd) is another implementation
// of this interface, which is why every call returns a Result: a remote store
// can fail where the embedded one only fails on disk errors.
//
// A change is durable when put() or remove() returns a revision: that is the
// moment the API acknowledges it.
#include <sys/types.h>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/Result.h"

namespace Atoll {

enum class Keyspace { Desired, Facts };
std::string_view keyspaceName(Keyspace keyspace);

// Who asked for a change; journaled with it.
struct ChangeOrigin {
  uid_t uid = 0;
  pid_t pid = 0;
  std::string via;  // "api", "daemon", a subsystem name
};

struct StateEntry {
  std::string key;
  nlohmann::json value;
  uint64_t revision = 0;  // revision of the change that wrote this value
};

class StateStore {
 public:
  virtual ~StateStore() = default;

  // "embedded", "etcd", ...
  virtual std::string_view kind() const = 0;
  // Revision of the latest change; 0 for an empty store.
  virtual uint64_t revision() const = 0;

  virtual Result<std::optional<StateEntry>> get(Keyspace keyspace,
                                                const std::string& key) const = 0;
  // Entries whose key starts with `prefix`, ordered by key.
  virtual Result<std::vector<StateEntry>> list(Keyspace keyspace,
                                               std::string_view prefix) const = 0;
  // Durable when it returns; the revision of the change.
  virtual Result<uint64_t> put(Keyspace keyspace, const std::string& key, nlohmann::json value,
                               const ChangeOrigin& origin) = 0;
  // The revision of the removal, or nullopt when the key did not exist.
  virtual Result<std::optional<uint64_t>> remove(Keyspace keyspace, const std::string& key,
                                                 const ChangeOrigin& origin) = 0;
};

}  // namespace Atoll
