#include "runtime/Config.h"

#include <fmt/format.h>
#include <toml++/toml.h>
#include <algorithm>
#include <functional>
#include <optional>
#include <type_traits>

#include "migrate/transfer/Net.h"
#include "migrate/transfer/QemuMigration.h"
#include "migrate/transfer/Rate.h"
#include "numa/CpuSet.h"
#include "numa/Island.h"
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

  size_t errorCount() const { return errors_.size(); }

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

  // A string read by `parse(text)`, which returns a Result; its error's
  // detail is reported with the text, under the key.
  template <typename Parse>
  auto parsed(const toml::node& node, const std::string& key, Parse&& parse)
      -> std::optional<std::decay_t<decltype(*parse(std::string()))>> {
    auto text = string(node, key);
    if (!text) return std::nullopt;
    auto value = parse(*text);
    if (!value) {
      error(node.source(), key, "'" + *text + "': " + value.error().detail);
      return std::nullopt;
    }
    return std::move(*value);
  }

  std::optional<bool> boolean(const toml::node& node, const std::string& key) {
    const auto* value = node.as_boolean();
    if (value == nullptr) {
      wrongType(node, key, "a boolean");
      return std::nullopt;
    }
    return value->get();
  }

  // A float or an integer, within [min, max].
  std::optional<double> number(const toml::node& node, const std::string& key, double min,
                               double max) {
    double v;
    if (const auto* f = node.as_floating_point())
      v = f->get();
    else if (const auto* i = node.as_integer())
      v = static_cast<double>(i->get());
    else {
      wrongType(node, key, "a number");
      return std::nullopt;
    }
    if (!(v >= min && v <= max)) {
      error(node.source(), key, fmt::format("{} is out of range {}..{}", v, min, max));
      return std::nullopt;
    }
    return v;
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
             auto parsed =
                 v.parsed(n, k, [](const std::string& x) { return ListenAddress::parse(x); });
             if (parsed) c.metricsListen = *parsed;
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

std::optional<std::vector<std::string>> stringList(Validator& v, const toml::node& node,
                                                   const std::string& key) {
  const auto* array = node.as_array();
  if (array == nullptr) {
    v.wrongType(node, key, "an array of strings");
    return std::nullopt;
  }
  std::vector<std::string> out;
  for (const auto& element : *array) {
    const auto* text = element.as_string();
    if (text == nullptr) {
      v.wrongType(element, key, "an array of strings");
      return std::nullopt;
    }
    out.push_back(text->get());
  }
  return out;
}

// A selector is a glob relative to the cgroup2 mount: no leading '/', no
// empty, "." or ".." component.
std::string selectorProblem(const std::string& selector) {
  if (selector.empty()) return "an empty selector matches nothing";
  if (selector.front() == '/') return "selectors are relative to the cgroup2 mount (no leading /)";
  if (selector.find('\0') != std::string::npos) return "selectors hold no NUL byte";
  size_t begin = 0;
  while (begin <= selector.size()) {
    size_t end = selector.find('/', begin);
    if (end == std::string::npos) end = selector.size();
    std::string_view part(selector.data() + begin, end - begin);
    if (part.empty() || part == "." || part == "..")
      return "selector components may not be empty, '.' or '..'";
    begin = end + 1;
  }
  return {};
}

void readTelemetry(Validator& v, const toml::table& table, DaemonConfig& c) {
  TelemetrySettings& t = c.telemetry;
  auto flag = [&](bool& target) {
    return [&v, &target](const toml::node& n, const std::string& k) {
      if (auto x = v.boolean(n, k)) target = *x;
    };
  };
  v.keys(table, "telemetry",
         {{"enabled", flag(t.enabled)},
          {"cgroup_mount",
           [&](const toml::node& n, const std::string& k) {
             auto x = v.string(n, k);
             if (!x) return;
             if (!x->empty() && !isAbsolutePath(*x)) {
               v.error(n.source(), k, "'" + *x + "' is not an absolute path (\"\" detects it)");
               return;
             }
             t.cgroupMount = *x;
           }},
          {"selectors",
           [&](const toml::node& n, const std::string& k) {
             auto x = stringList(v, n, k);
             if (!x) return;
             for (const auto& selector : *x) {
               if (std::string problem = selectorProblem(selector); !problem.empty()) {
                 v.error(n.source(), k, "'" + selector + "': " + problem);
                 return;
               }
             }
             t.selectors = *x;
           }},
          {"libvirt_uri",
           [&](const toml::node& n, const std::string& k) {
             if (auto x = v.string(n, k)) t.libvirtUri = *x;
           }},
          {"sched_probe", flag(t.schedProbe)},
          {"net_probe", flag(t.netProbe)},
          {"block_probe", flag(t.blockProbe)},
          {"discover_every_ticks",
           [&](const toml::node& n, const std::string& k) {
             if (auto x = v.integer(n, k, 1, 3600)) t.discoverEveryTicks = static_cast<int>(*x);
           }},
          {"libvirt_timeout_ms", [&](const toml::node& n, const std::string& k) {
             if (auto x = v.integer(n, k, 1, 60000))
               t.libvirtTimeout = std::chrono::milliseconds(*x);
           }}});
}

void readForecast(Validator& v, const toml::table& table, DaemonConfig& c) {
  ForecastSettings& f = c.forecast;
  std::optional<toml::source_region> where;
  v.keys(table, "forecast",
         {{"step_seconds",
           [&](const toml::node& n, const std::string& k) {
             if (auto x = v.integer(n, k, 1, 3600)) f.step = std::chrono::seconds(*x);
           }},
          {"horizon_seconds",
           [&](const toml::node& n, const std::string& k) {
             where = n.source();
             if (auto x = v.integer(n, k, 1, 7 * 86400)) f.horizon = std::chrono::seconds(*x);
           }},
          {"season_seconds", [&](const toml::node& n, const std::string& k) {
             if (auto x = v.integer(n, k, 0, 7 * 86400)) f.season = std::chrono::seconds(*x);
           }}});
  const toml::source_region at = where ? *where : table.source();
  if (f.horizon.count() % f.step.count() != 0 || f.horizonSteps() < 1 ||
      f.horizonSteps() > kMaxForecastSteps)
    v.error(at, "forecast.horizon_seconds",
            std::to_string(f.horizon.count()) + " s is not a whole number of steps of " +
                std::to_string(f.step.count()) + " s between 1 and " +
                std::to_string(kMaxForecastSteps));
  if (f.season.count() != 0 && (f.season.count() % f.step.count() != 0 || f.seasonSteps() < 2 ||
                                f.seasonSteps() > kMaxSeasonSteps))
    v.error(table.source(), "forecast.season_seconds",
            std::to_string(f.season.count()) + " s is not a whole number of steps of " +
                std::to_string(f.step.count()) + " s between 2 and " +
                std::to_string(kMaxSeasonSteps) + " (0 turns the season off)");
  else if (f.season.count() != 0 && f.horizon > f.season)
    v.error(at, "forecast.horizon_seconds",
            "a horizon of " + std::to_string(f.horizon.count()) +
                " s reaches beyond the season of " + std::to_string(f.season.count()) + " s");
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
    // The islands subsystem refuses the name at every tick.
    if (name.str() == numa::kSharedIslandName) {
      v.error(name.source(), key, "island name 'shared' is reserved for the CPUs no island claims");
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

std::optional<planner::Mode> readMode(Validator& v, const toml::node& n, const std::string& k) {
  auto x = v.string(n, k);
  if (!x) return std::nullopt;
  auto mode = planner::parseMode(*x);
  if (!mode) v.error(n.source(), k, "'" + *x + "' is not one of observe, enforce");
  return mode;
}

void readPlanner(Validator& v, const toml::table& table, DaemonConfig& c) {
  PlannerSettings& p = c.planner;
  planner::PlannerConfig& pc = p.config;
  const size_t errorsBefore = v.errorCount();
  auto seconds = [&v](int64_t& target, int64_t max, int64_t min = 1) {
    return [&v, &target, max, min](const toml::node& n, const std::string& k) {
      if (auto x = v.integer(n, k, min, max)) target = *x * 1'000'000'000;
    };
  };
  auto real = [&v](double& target, double min, double max) {
    return [&v, &target, min, max](const toml::node& n, const std::string& k) {
      if (auto x = v.number(n, k, min, max)) target = *x;
    };
  };
  auto whole = [&v](auto& target, int64_t min, int64_t max) {
    return [&v, &target, min, max](const toml::node& n, const std::string& k) {
      if (auto x = v.integer(n, k, min, max))
        target = static_cast<std::remove_reference_t<decltype(target)>>(*x);
    };
  };
  v.keys(table, "planner",
         {{"mode",
           [&](const toml::node& n, const std::string& k) {
             if (auto m = readMode(v, n, k)) pc.mode = *m;
           }},
          {"islands",
           [&](const toml::node& n, const std::string& k) {
             const toml::table* islands = v.table(n, k);
             if (islands == nullptr) return;
             for (auto&& [name, node] : *islands) {
               std::string key = k + "." + std::string(name.str());
               if (!isIslandName(name.str()) && name.str() != "shared") {
                 v.error(name.source(), key,
                         "island name '" + std::string(name.str()) +
                             "' must be 1-64 letters, digits, '_' or '-'");
                 continue;
               }
               if (auto m = readMode(v, node, key)) p.islandModes[std::string(name.str())] = *m;
             }
           }},
          {"horizon_steps", whole(pc.horizonSteps, 1, kMaxForecastSteps)},
          {"risk_threshold", real(pc.riskThreshold, 0.001, 1.0)},
          {"headroom", real(pc.headroom, 1.0, 4.0)},
          {"max_cpus_per_resize", whole(pc.maxCpusPerResize, 1, 1024)},
          {"allow_vm_moves",
           [&](const toml::node& n, const std::string& k) {
             if (auto x = v.boolean(n, k)) pc.allowVmMoves = *x;
           }},
          {"margin", real(pc.margin, 0.0, 100.0)},
          {"min_margin", real(pc.minMargin, 0.0, 100.0)},
          {"max_margin", real(pc.maxMargin, 0.0, 100.0)},
          {"min_dwell_seconds", seconds(pc.minDwellNs, 7 * 86400)},
          {"budget_window_seconds", seconds(pc.budgetWindowNs, 7 * 86400)},
          {"host_moves_per_window", whole(pc.hostMovesPerWindow, 0, 10000)},
          {"island_moves_per_window", whole(pc.islandMovesPerWindow, 0, 10000)},
          {"hysteresis_window_seconds", seconds(pc.hysteresisWindowNs, 7 * 86400)},
          {"island_cooldown_seconds", seconds(pc.islandCooldownNs, 7 * 86400, 0)},
          {"same_role_cooldown_seconds", seconds(pc.sameRoleCooldownNs, 7 * 86400, 0)},
          {"balance_band", real(pc.balanceBand, 0.0, 0.99)},
          {"donor_peak_over_cooldown",
           [&](const toml::node& n, const std::string& k) {
             if (auto x = v.boolean(n, k)) pc.donorKeepsPeakOverCooldown = *x;
           }},
          {"donor_harm_over_cooldown",
           [&](const toml::node& n, const std::string& k) {
             if (auto x = v.boolean(n, k)) pc.donorHarmOverCooldown = *x;
           }},
          {"resize_quantile", whole(pc.resizeQuantile, 95, 99)},
          {"min_relief_share", real(pc.minReliefShare, 0.0, 1.0)},
          {"min_move_coverage", real(pc.minMoveCoverage, 0.0, 1.0)},
          {"min_risk_p50_share", real(pc.minRiskP50Share, 0.0, 1.0)},
          {"donor_rule", [&](const toml::node& n, const std::string& k) {
             auto x = v.string(n, k);
             if (!x) return;
             if (auto rule = planner::parseDonorRule(*x)) {
               pc.donorRule = *rule;
             } else {
               v.error(n.source(), k, "'" + *x + "' is not one of " + planner::donorRuleChoices());
             }
           }}});
  // Cross-field rules (e.g. margin within [min_margin, max_margin]) are the
  // planner's own; reported once the single values are sound.
  if (v.errorCount() == errorsBefore) {
    if (std::string problem = pc.validate(); !problem.empty())
      v.error(table.source(), "planner", problem);
  }
}

void readTransfer(Validator& v, const toml::table& table, DaemonConfig& c) {
  TransferSettings& t = c.transfer;
  auto file = [&v](std::string& target) {
    return [&v, &target](const toml::node& n, const std::string& k) {
      auto x = v.string(n, k);
      if (!x) return;
      if (!x->empty() && !isAbsolutePath(*x)) {
        v.error(n.source(), k, "'" + *x + "' is not an absolute path");
        return;
      }
      target = *x;
    };
  };
  v.keys(table, "transfer",
         {{"listen",
           [&](const toml::node& n, const std::string& k) {
             auto x = v.string(n, k);
             if (!x) return;
             if (*x == "off" || x->empty()) {
               t.listen.clear();
               return;
             }
             auto endpoint = transfer::parseEndpoint(*x);
             if (!endpoint) {
               v.error(n.source(), k, "'" + *x + "': " + endpoint.error().detail + " (or \"off\")");
               return;
             }
             t.listen = *x;
           }},
          {"staging_directory",
           [&](const toml::node& n, const std::string& k) {
             auto x = v.string(n, k);
             if (!x) return;
             if (!isAbsolutePath(*x) || *x == "/") {
               v.error(n.source(), k, "'" + *x + "' is not an absolute path below /");
               return;
             }
             t.stagingDirectory = *x;
           }},
          {"tls_certificate", file(t.tlsCertificate)},
          {"tls_private_key", file(t.tlsPrivateKey)},
          {"tls_ca", file(t.tlsCa)},
          {"cpus",
           [&](const toml::node& n, const std::string& k) {
             auto cpus =
                 v.parsed(n, k, [&k](const std::string& x) { return numa::parseCpuList(x, k); });
             if (cpus) t.cpus = std::move(*cpus);
           }},
          {"pipelined",
           [&](const toml::node& n, const std::string& k) {
             if (auto x = v.boolean(n, k)) t.pipelined = *x;
           }},
          {"downtime_limit_ms",
           [&](const toml::node& n, const std::string& k) {
             if (auto x = v.integer(n, k, 0, static_cast<int64_t>(transfer::kMaxDowntimeLimitMs)))
               t.downtimeLimitMs = static_cast<uint64_t>(*x);
           }},
          {"host_bwlimit", [&](const toml::node& n, const std::string& k) {
             if (const auto* i = n.as_integer()) {
               if (i->get() < 0) {
                 v.error(n.source(), k, std::to_string(i->get()) + " is negative (0 means no cap)");
                 return;
               }
               t.hostBandwidth = static_cast<uint64_t>(i->get());
               return;
             }
             auto rate =
                 v.parsed(n, k, [&k](const std::string& x) { return transfer::parseRate(x, k); });
             if (rate) t.hostBandwidth = *rate;
           }}});
  int tlsFiles = !t.tlsCertificate.empty() + !t.tlsPrivateKey.empty() + !t.tlsCa.empty();
  if (tlsFiles != 0 && tlsFiles != 3)
    v.error(table.source(), "transfer",
            "tls_certificate, tls_private_key and tls_ca go together: set all three for "
            "TLS, or none for plaintext");
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
          {"islands", section([&](const toml::table& t) { readIslands(v, t, c); })},
          {"telemetry", section([&](const toml::table& t) { readTelemetry(v, t, c); })},
          {"forecast", section([&](const toml::table& t) { readForecast(v, t, c); })},
          {"planner", section([&](const toml::table& t) { readPlanner(v, t, c); })},
          {"transfer", section([&](const toml::table& t) { readTransfer(v, t, c); })}});

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

namespace {

// The [planner] values fixed at start (everything the table sets but the mode).
auto plannerKnobs(const planner::PlannerConfig& p) {
  return std::tie(p.horizonSteps, p.riskThreshold, p.headroom, p.maxCpusPerResize, p.allowVmMoves,
                  p.margin, p.minMargin, p.maxMargin, p.minDwellNs, p.budgetWindowNs,
                  p.hostMovesPerWindow, p.islandMovesPerWindow, p.hysteresisWindowNs,
                  p.islandCooldownNs, p.sameRoleCooldownNs, p.balanceBand,
                  p.donorKeepsPeakOverCooldown, p.donorHarmOverCooldown, p.resizeQuantile,
                  p.minReliefShare, p.minMoveCoverage, p.minRiskP50Share, p.donorRule);
}

}  // namespace

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
  if (!(running.telemetry == next.telemetry)) out.push_back("telemetry");
  if (!(running.forecast == next.forecast)) out.push_back("forecast");
  if (plannerKnobs(running.planner.config) != plannerKnobs(next.planner.config))
    out.push_back("planner");
  TransferSettings runningTransfer = running.transfer, nextTransfer = next.transfer;
  runningTransfer.hostBandwidth = nextTransfer.hostBandwidth = 0;
  runningTransfer.downtimeLimitMs = nextTransfer.downtimeLimitMs = 0;
  if (!(runningTransfer == nextTransfer)) out.push_back("transfer");
  return out;
}

}  // namespace Atoll
