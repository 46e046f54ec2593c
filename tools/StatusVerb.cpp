// `atoll status`: what the local atolld is doing: version, uptime, where its
// configuration came from, each subsystem's state and last tick timings, and
// the signals and features each subsystem runs without (degraded).
#include <cstdio>
#include <iostream>
#include <memory>
#include <sstream>

#include "tools/DaemonClient.h"
#include "tools/Verbs.h"

namespace Atoll::cli {

namespace {

std::string formatUptime(double seconds) {
  auto total = static_cast<long long>(seconds);
  long long days = total / 86400, hours = total / 3600 % 24, minutes = total / 60 % 60,
            secs = total % 60;
  std::ostringstream out;
  if (days > 0) out << days << "d";
  if (days > 0 || hours > 0) out << hours << "h";
  if (days > 0 || hours > 0 || minutes > 0) out << minutes << "m";
  out << secs << "s";
  return out.str();
}

std::string formatMicros(const nlohmann::json& value) {
  if (!value.is_number()) return "-";
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.2f ms", value.get<double>() / 1000.0);
  return buffer;
}

template <typename T>
T field(const nlohmann::json& object, const char* key, T fallback) {
  if (!object.is_object() || !object.contains(key)) return fallback;
  try {
    return object[key].get<T>();
  } catch (const nlohmann::json::exception&) {
    return fallback;
  }
}

void printHuman(const nlohmann::json& s) {
  const auto& config = s.value("config", nlohmann::json::object());
  const auto& tick = s.value("tick", nlohmann::json::object());
  const auto& state = s.value("state", nlohmann::json::object());
  std::cout << "atolld " << field<std::string>(s, "version", "?") << ", pid "
            << field<long long>(s, "pid", 0) << ", up "
            << formatUptime(field<double>(s, "uptime_seconds", 0)) << "\n";
  std::cout << "config:     " << field<std::string>(config, "source", "?") << " (generation "
            << field<long long>(config, "generation", 0) << ")";
  const auto& reload = config.value("last_reload", nlohmann::json());
  if (reload.is_object())
    std::cout << ", last reload " << field<std::string>(reload, "result", "?");
  std::cout << "\n";
  std::cout << "tick:       every " << field<long long>(tick, "interval_ms", 0) << " ms, "
            << field<long long>(tick, "count", 0) << " ticks, "
            << field<long long>(tick, "missed", 0) << " missed, last "
            << formatMicros(tick.value("last", nlohmann::json::object())
                                .value("duration_us", nlohmann::json()))
            << ", max " << formatMicros(tick.value("max_duration_us", nlohmann::json())) << "\n";
  std::cout << "state:      " << field<std::string>(state, "store", "?") << " store, revision "
            << field<long long>(state, "revision", 0) << ", "
            << field<long long>(state, "desired_keys", 0) << " desired keys, journal "
            << field<long long>(state, "journal_bytes", 0) << " bytes in "
            << field<long long>(state, "journal_records", 0) << " records\n";
  std::cout << "subsystems:\n";
  std::printf("  %-16s %-8s %-8s %-12s %-10s %s\n", "NAME", "STATE", "BUDGET", "LAST TICK",
              "OVERRUNS", "FAILURES");
  for (const auto& sub : s.value("subsystems", nlohmann::json::array())) {
    std::string budget = std::to_string(field<long long>(sub, "budget_ms", 0)) + " ms";
    std::printf("  %-16s %-8s %-8s %-12s %-10lld %lld\n",
                field<std::string>(sub, "name", "?").c_str(),
                field<std::string>(sub, "state", "?").c_str(), budget.c_str(),
                formatMicros(sub.value("last_used_us", nlohmann::json())).c_str(),
                field<long long>(sub, "overruns", 0), field<long long>(sub, "failures", 0));
    std::string error = field<std::string>(sub, "last_error", "");
    if (!error.empty()) std::cout << "    last error: " << error << "\n";
    const auto& details = sub.value("details", nlohmann::json::object());
    if (!details.is_object()) continue;
    if (details.contains("workloads") && details["workloads"].is_number())
      std::cout << "    workloads: " << details["workloads"].get<long long>() << "\n";
    for (const auto& line : details.value("degraded", nlohmann::json::array()))
      if (line.is_string()) std::cout << "    degraded: " << line.get<std::string>() << "\n";
    if (std::string libvirt = field<std::string>(details, "libvirt_problem", ""); !libvirt.empty())
      std::cout << "    libvirt: " << libvirt << "\n";
    for (const auto& line : details.value("problems", nlohmann::json::array()))
      if (line.is_string()) std::cout << "    problem: " << line.get<std::string>() << "\n";
  }
  std::cout << std::flush;
}

}  // namespace

void addStatusVerb(CLI::App& app) {
  struct Options {
    DaemonConnection connection;
    bool json = false;
  };
  auto options = std::make_shared<Options>();
  CLI::App* verb = app.add_subcommand(
      "status", "Show the local atolld: version, uptime, config, subsystems, last tick");
  verb->add_flag("--json", options->json, "Print the daemon's status document as JSON");
  addDaemonOptions(*verb, options->connection);
  verb->footer("Exit status: 0 ok, 3 atolld not running, 4 permission denied.");
  verb->callback([options] {
    DaemonClient client(options->connection);
    DaemonReply reply = expectSuccess(client.get("/v1/status"), options->json);
    if (options->json)
      std::cout << reply.body.dump(2) << "\n";
    else
      printHuman(reply.body);
  });
}

}  // namespace Atoll::cli
