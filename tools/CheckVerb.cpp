// atoll check: probes the running host for every kernel feature Atoll uses
// and prints ok / missing / degraded per feature with the kernel option or
// Debian package that fixes it. Exit status 0 when every required feature is
// present, 1 otherwise.
#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include "bpf/collector/Collector.h"
#include "bpf/collector/TelemetrySignals.h"
#include "kernel-configs/CapabilityCheck.h"
#include "kernel-configs/Report.h"
#include "tools/NumberOptions.h"
#include "tools/Verbs.h"

namespace Atoll::cli {

namespace {

struct CheckArgs {
  bool json = false;
  std::string libvirtUri = capability::kDefaultLibvirtUri;
  int libvirtTimeoutMs = static_cast<int>(capability::kDefaultLibvirtTimeout.count());
};

void runCheck(const CheckArgs& args) {
  capability::CheckOptions options;
  options.libvirtUri = args.libvirtUri;
  options.libvirtTimeout = std::chrono::milliseconds(args.libvirtTimeoutMs);
  capability::Report report = capability::runCapabilityCheck(options);
  // Which telemetry signals this kernel gives, and why not (informational:
  // a missing one degrades that signal only, never the exit status).
  auto signals = telemetry::probeTelemetrySignals(telemetry::defaultCgroup2Mount());
  if (args.json) {
    auto json = nlohmann::ordered_json::parse(capability::renderJson(report));
    json["telemetry_signals"] =
        nlohmann::ordered_json::parse(telemetry::signalsJson(signals).dump());
    std::cout << json.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
  } else {
    std::cout << capability::renderText(report) << "\n" << telemetry::renderSignals(signals);
  }
  std::cout.flush();
  if (!report.requiredSatisfied()) throw CLI::RuntimeError(kExitFailure);
}

}  // namespace

void addCheckVerb(CLI::App& app) {
  auto args = std::make_shared<CheckArgs>();
  CLI::App* check = app.add_subcommand(
      "check", "Probe this host for the kernel features Atoll needs (run as root)");
  check->add_flag("--json", args->json, "Print the report as JSON");
  check->add_option("--libvirt-uri", args->libvirtUri, "libvirt connection to probe")
      ->capture_default_str();
  check
      ->add_option("--libvirt-timeout-ms", args->libvirtTimeoutMs,
                   "Give up on libvirt after this many milliseconds")
      ->check(kDecimal)
      ->check(CLI::Range(1, 60000))
      ->capture_default_str();
  check->callback([args] { runCheck(*args); });
}

}  // namespace Atoll::cli
