#include "runtime/Config.h"

#include <toml++/toml.h>
#include <algorithm>
#include <functional>
#include <optional>

#include "runtime/SubsystemCatalog.h"
#include "util/Fs.h"

namespace Atoll {

std::string ConfigError::format() const {
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line) + ":" + std::to_string(column);
  out += ": ";
  if (!key.empty()) out += key + ": ";
  out += message;
  return out;
}

DaemonConfig defaultConfig() {
  DaemonConfig config;
  for (const auto& entry : kSubsystemCatalog)
    config.subsystems[std::string(entry.name)] = SubsystemSettings{entry.defaultBudget};
  return config;
}

namespace {

std::string_view typeName(toml::node_type type) {
  switch (type) {
    case toml::node_type::table:
      return "table";
    case toml::node_type::array:
      return "array";
    case toml::node_type::string:
      return "string";
    case toml::node_type::integer:
      return "integer";
    case toml::node_type::floating_point:
      return "float";
    case toml::node_type::boolean:
      return "boolean";
    case toml::node_type::date:
      return "date";
    case toml::node_type::time:
      return "time";
    case toml::node_type::date_time:
      return "date-time";
    default:
      return "nothing";
  }
}

using KeyHandler = std::function<void(const toml::node&, const std::string& key)>;

// Collects errors with their positions while walking the document.
class Validator {
 public:
  Validator(std::string file, std::vector<ConfigError>& errors)
      : file_(std::move(file)), errors_(errors) {}

  void error(const toml::source_region& where, std::string key, std::string message) {
    errors_.push_back(ConfigError{file_, static_cast<int>(where.begin.line),
                                  static_cast<int>(where.begin.column), std::move(key),
                                  std::move(message)});
  }

  void wrongType(const toml::node& node, const std::string& key, std::string_view expected) {
    error(node.source(), key,
          "expected " + std::string(expected) + ", found " + std::string(typeName(node.type())));
  }

  std::optional<int64_t> integer(const toml::node& node, const std::string& key, int64_t min,
                                 int64_t max) {
    const auto* value = node.as_integer();
    if (value == nullptr) {
      wrongType(node, key, "an integer");
      return std::nullopt;
    }
    int64_t v = value->get();
    if (v < min || v > max) {
      error(node.source(), key,
            std::to_string(v) + " is out of range " + std::to_string(min) + ".." +
                std::to_string(max));
      return std::nullopt;
    }
    return v;
  }

  std::optional<std::string> string(const toml::node& node, const std::string& key) {
    const auto* value = node.as_string();
    if (value == nullptr) {
      wrongType(node, key, "a string");
      return std::nullopt;
    }
    return value->get();
  }

  std::optional<bool> boolean(const toml::node& node, const std::string& key) {
    const auto* value = node.as_boolean();
    if (value == nullptr) {
      wrongType(node, key, "a boolean");
      return std::nullopt;
    }
    return value->get();
  }

  const toml::table* table(const toml::node& node, const std::string& key) {
    const auto* value = node.as_table();
    if (value == nullptr) wrongType(node, key, "a table");
    return value;
  }

  // Dispatches each key of `table` to its handler; unknown keys are errors
  // that list the known ones.
  void keys(const toml::table& table, const std::string& prefix,
            const std::vector<std::pair<std::string_view, KeyHandler>>& handlers) {
    for (auto&& [name, node] : table) {
      std::string key =
          prefix.empty() ? std::string(name.str()) : prefix + "." + std::string(name.str());
      auto it = std::find_if(handlers.begin(), handlers.end(),
                             [&](const auto& h) { return h.first == name.str(); });
      if (it == handlers.end()) {
        std::string known;
        for (const auto& h : handlers) known += (known.empty() ? "" : ", ") + std::string(h.first);
        error(name.source(), key, "unknown key (known keys: " + known + ")");
        continue;
      }
      it->second(node, key);
    }
  }

 private:
  std::string file_;
  std::vector<ConfigError>& errors_;
};

bool isAbsolutePath(const std::string& path) {
  return !path.empty() && path.front() == '/' && path.find('\0') == std::string::npos;
}

bool isGroupName(const std::string& name) {
  if (name.empty() || name.size() > 32) return false;
  if (!(std::islower(static_cast<unsigned char>(name[0])) || name[0] == '_')) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::islower(static_cast<unsigned char>(c)) ||
           std::isdigit(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

bool isIslandName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

std::optional<CpuSet> readCpuSet(Validator& v, const toml::node& node, const std::string& key) {
  if (const auto* text = node.as_string()) {
    auto parsed = CpuSet::parse(text->get());
    if (!parsed) {
      v.error(node.source(), key, parsed.error().detail + " in '" + text->get() + "'");
      return std::nullopt;
    }
    return *parsed;
  }
  if (const auto* array = node.as_array()) {
    std::vector<long long> indices;
    for (const auto& element : *array) {
      const auto* number = element.as_integer();
      if (number == nullptr) {
        v.wrongType(element, key, "integer CPU indices");
        return std::nullopt;
      }
      indices.push_back(number->get());
    }
    auto parsed = CpuSet::fromIndices(indices);
    if (!parsed) {
      v.error(node.source(), key, parsed.error().detail + " (" + parsed.error().value + ")");
      return std::nullopt;
    }
    return *parsed;
  }
  v.wrongType(node, key, "a cpulist string like \"0-3,8\" or an array of integers");
  return std::nullopt;
}

void readDaemon(Validator& v, const toml::table& table, DaemonConfig& c,
                std::optional<toml::source_region>& tickWhere) {
  v.keys(table, "daemon",
         {{"tick_ms",
           [&](const toml::node& n, const std::string& k) {
             tickWhere = n.source();
             if (auto x = v.integer(n, k, 10, 60000)) c.tick = std::chrono::milliseconds(*x);
           }},
          {"drain_timeout_ms",
           [&](const toml::node& n, const std::string& k) {
             if (auto x = v.integer(n, k, 0, 600000))
               c.drainTimeout = std::chrono::milliseconds(*x);
           }},
          {"log_level", [&](const toml::node& n, const std::string& k) {
             auto x = v.string(n, k);
             if (!x) return;
             static const std::vector<std::string> levels = {"trace", "debug",    "info", "warn",
                                                             "error", "critical", "off"};
             if (std::find(levels.begin(), levels.end(), *x) == levels.end()) {
               v.error(n.source(), k,
                       "'" + *x + "' is not one of trace, debug, info, warn, error, critical, off");
               return;
             }
             c.logLevel = *x;
           }}});
}

void readApi(Validator& v, const toml::table& table, DaemonConfig& c) {
  v.keys(table, "api",
         {{"socket_path",
           [&](const toml::node& n, const std::string& k) {
             auto x = v.string(n, k);
             if (!x) return;
             if (!isAbsolutePath(*x) || x->back() == '/') {
               v.error(n.source(), k, "'" + *x + "' is not an absolute file path");
             } else if (x->size() > 107) {
               v.error(n.source(), k,
                       "path is " + std::to_string(x->size()) +
                           " bytes; a unix socket path holds at most 107");
             } else {
               c.socketPath = *x;
             }
           }},
          {"socket_group",
           [&](const toml::node& n, const std::string& k) {
             auto x = v.string(n, k);
             if (!x) return;
             if (!x->empty() && !isGroupName(*x)) {
               v.error(n.source(), k, "'" + *x + "' is not a valid group name");
               return;
             }
             c.socketGroup = *x;
           }},
          {"max_body_bytes",
           [&](const toml::node& n, const std::string& k) {
             if (auto x = v.integer(n, k, 1024, 16 * 1024 * 1024)) c.maxBodyBytes = *x;
           }},
          {"request_timeout_ms",
           [&](const toml::node& n, const std::string& k) {
             if (auto x = v.integer(n, k, 100, 600000))
               c.requestTimeout = std::chrono::milliseconds(*x);
           }},
          {"threads", [&](const toml::node& n, const std::string& k) {
             if (auto x = v.integer(n, k, 1, 64)) c.apiThreads = static_cast<unsigned>(*x);
           }}});
}

void readMetrics(Validator& v, const toml::table& table, DaemonConfig& c) {
  v.keys(table, "metrics",
         {{"enabled",
           [&](const toml::node& n, const std::string& k) {
             if (auto x = v.boolean(n, k)) c.metricsEnabled = *x;
           }},
          {"listen", [&](const toml::node& n, const std::string& k) {
             auto x = v.string(n, k);
             if (!x) return;
             auto parsed = ListenAddress::parse(*x);
             if (!parsed) {
               v.error(n.source(), k, "'" + *x + "': " + parsed.error().detail);
               return;
             }
             c.metricsListen = *parsed;
           }}});
}

void readState(Validator& v, const toml::table& table, DaemonConfig& c) {
  v.keys(table, "state",
         {{"directory",
           [&](const toml::node& n, const std::string& k) {
             auto x = v.string(n, k);
             if (!x) return;
             if (!isAbsolutePath(*x)) {
               v.error(n.source(), k, "'" + *x + "' is not an absolute path");
               return;
             }
             c.stateDirectory = *x;
           }},
          {"compact_journal_bytes", [&](const toml::node& n, const std::string& k) {
             if (auto x = v.integer(n, k, 4096, int64_t(1) << 30)) c.compactJournalBytes = *x;
           }}});
}

void readSubsystems(Validator& v, const toml::table& table, DaemonConfig& c) {
  std::vector<std::pair<std::string_view, KeyHandler>> handlers;
  for (const auto& entry : kSubsystemCatalog) {
    handlers.emplace_back(entry.name, [&v, &c, name = entry.name](const toml::node& n,
                                                                  const std::string& k) {
      const toml::table* sub = v.table(n, k);
      if (sub == nullptr) return;
      v.keys(*sub, k, {{"budget_ms", [&](const toml::node& bn, const std::string& bk) {
                          if (auto x = v.integer(bn, bk, 1, 60000))
                            c.subsystems[std::string(name)].budget = std::chrono::milliseconds(*x);
                        }}});
    });
  }
  v.keys(table, "subsystems", handlers);
}

void readIslands(Validator& v, const toml::table& table, DaemonConfig& c) {
  struct Seen {
    std::string name;
    int line;
  };
  std::vector<Seen> seen;
  for (auto&& [name, node] : table) {
    std::string key = "islands." + std::string(name.str());
    if (!isIslandName(name.str())) {
      v.error(
          name.source(), key,
          "island name '" + std::string(name.str()) + "' must be 1-64 letters, digits, '_' or '-'");
      continue;
    }
    const toml::table* island = v.table(node, key);
    if (island == nullptr) continue;
    IslandSettings settings;
    settings.name = std::string(name.str());
    settings.line = static_cast<int>(name.source().begin.line);
    bool haveCpus = false;
    bool cpusValid = false;
    std::optional<toml::source_region> cpusWhere;
    v.keys(*island, key,
           {{"cpus",
             [&](const toml::node& n, const std::string& k) {
               haveCpus = true;
               cpusWhere = n.source();
               if (auto x = readCpuSet(v, n, k)) {
                 settings.cpus = *x;
                 cpusValid = true;
               }
             }},
            {"mems", [&](const toml::node& n, const std::string& k) {
               if (auto x = readCpuSet(v, n, k)) settings.mems = *x;
             }}});
    if (!haveCpus) {
      v.error(name.source(), key + ".cpus", "missing: every island needs its CPU list");
      continue;
    }
    if (!cpusValid) continue;
    for (const auto& other : c.islands) {
      CpuSet shared = settings.cpus.intersect(other.cpus);
      if (!shared.empty())
        v.error(*cpusWhere, key + ".cpus",
                "CPUs " + shared.toString() + " overlap with island '" + other.name + "' (line " +
                    std::to_string(other.line) + ")");
    }
    c.islands.push_back(std::move(settings));
  }
}

}  // namespace

ConfigParse parseConfig(std::string_view text, std::string_view sourceName) {
  ConfigParse out;
  out.config = defaultConfig();
  out.config.source = std::string(sourceName);
  std::string file(sourceName);
  toml::table document;
  try {
    document = toml::parse(text, sourceName);
  } catch (const toml::parse_error& e) {
    out.errors.push_back(ConfigError{file, static_cast<int>(e.source().begin.line),
                                     static_cast<int>(e.source().begin.column), "",
                                     "TOML syntax: " + std::string(e.description())});
    return out;
  }
  Validator v(file, out.errors);
  DaemonConfig& c = out.config;
  std::optional<toml::source_region> tickWhere;
  std::optional<toml::source_region> subsystemsWhere;
  auto section = [&](auto reader) {
    return [&, reader](const toml::node& n, const std::string& k) {
      if (const toml::table* t = v.table(n, k)) reader(*t);
    };
  };
  v.keys(document, "",
         {{"daemon", section([&](const toml::table& t) { readDaemon(v, t, c, tickWhere); })},
          {"api", section([&](const toml::table& t) { readApi(v, t, c); })},
          {"metrics", section([&](const toml::table& t) { readMetrics(v, t, c); })},
          {"state", section([&](const toml::table& t) { readState(v, t, c); })},
          {"subsystems", section([&](const toml::table& t) {
             subsystemsWhere = t.source();
             readSubsystems(v, t, c);
           })},
          {"islands", section([&](const toml::table& t) { readIslands(v, t, c); })}});

  std::chrono::milliseconds budgets{0};
  for (const auto& [name, settings] : c.subsystems) budgets += settings.budget;
  if (budgets >= c.tick) {
    toml::source_region where =
        tickWhere ? *tickWhere : (subsystemsWhere ? *subsystemsWhere : document.source());
    v.error(where, tickWhere ? "daemon.tick_ms" : "subsystems",
            "the subsystems' budgets add up to " + std::to_string(budgets.count()) +
                " ms, which does not fit in a tick of " + std::to_string(c.tick.count()) + " ms");
  }
  std::stable_sort(out.errors.begin(), out.errors.end(), [](const auto& a, const auto& b) {
    return std::tie(a.line, a.column) < std::tie(b.line, b.column);
  });
  return out;
}

ConfigParse loadConfigFile(const std::string& path) {
  auto text = readFile(path);
  if (!text) {
    ConfigParse out;
    out.config = defaultConfig();
    out.errors.push_back(ConfigError{path, 0, 0, "", text.error().message()});
    return out;
  }
  return parseConfig(*text, path);
}

std::vector<std::string> restartOnlyChanges(const DaemonConfig& running, const DaemonConfig& next) {
  std::vector<std::string> out;
  if (running.socketPath != next.socketPath) out.push_back("api.socket_path");
  if (running.socketGroup != next.socketGroup) out.push_back("api.socket_group");
  if (running.maxBodyBytes != next.maxBodyBytes) out.push_back("api.max_body_bytes");
  if (running.requestTimeout != next.requestTimeout) out.push_back("api.request_timeout_ms");
  if (running.apiThreads != next.apiThreads) out.push_back("api.threads");
  if (running.metricsEnabled != next.metricsEnabled) out.push_back("metrics.enabled");
  if (!(running.metricsListen == next.metricsListen)) out.push_back("metrics.listen");
  if (running.stateDirectory != next.stateDirectory) out.push_back("state.directory");
  return out;
}

}  // namespace Atoll
