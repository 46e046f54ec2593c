// `atoll state`: read and change the desired state atolld keeps (journaled
// before the daemon acknowledges a change).
#include <iostream>
#include <memory>

#include "tools/DaemonClient.h"
#include "tools/Verbs.h"

namespace Atoll::cli {

void addStateVerb(CLI::App& app) {
  struct Options {
    DaemonConnection connection;
    bool json = false;
    std::string key;
    std::string value;
    std::string prefix;
  };
  auto options = std::make_shared<Options>();
  CLI::App* verb = app.add_subcommand("state", "Read and change atolld's desired state");
  verb->require_subcommand(1);

  CLI::App* list = verb->add_subcommand("list", "List desired-state keys and values");
  list->add_option("--prefix", options->prefix, "Only keys starting with this prefix");
  CLI::App* get = verb->add_subcommand("get", "Print one key's value");
  get->add_option("key", options->key, "Key, e.g. vm/web-1/island")->required();
  CLI::App* set = verb->add_subcommand("set", "Set a key to a JSON value");
  set->add_option("key", options->key, "Key, e.g. vm/web-1/island")->required();
  set->add_option("value", options->value, "JSON value; quote strings: '\"latency\"'")->required();
  CLI::App* remove = verb->add_subcommand("delete", "Delete a key");
  remove->add_option("key", options->key, "Key to delete")->required();

  for (CLI::App* sub : {list, get, set, remove}) {
    sub->add_flag("--json", options->json, "Print the daemon's answer as JSON");
    addDaemonOptions(*sub, options->connection);
    sub->footer(
        "Exit status: 0 ok, 1 refused or not found, 2 bad input, 3 atolld not running, "
        "4 permission denied.");
  }

  list->callback([options] {
    DaemonClient client(options->connection);
    std::string path = "/v1/state";
    if (!options->prefix.empty()) path += "?prefix=" + urlEncodeKey(options->prefix);
    DaemonReply reply = expectSuccess(client.get(path), options->json);
    if (options->json) {
      std::cout << reply.body.dump(2) << "\n";
      return;
    }
    for (const auto& entry : reply.body.value("entries", nlohmann::json::array()))
      std::cout << entry.value("key", "") << " = " << entry.value("value", nlohmann::json()).dump()
                << "\n";
  });
  get->callback([options] {
    DaemonClient client(options->connection);
    DaemonReply reply =
        expectSuccess(client.get("/v1/state/" + urlEncodeKey(options->key)), options->json);
    if (options->json)
      std::cout << reply.body.dump(2) << "\n";
    else
      std::cout << reply.body.value("value", nlohmann::json()).dump() << "\n";
  });
  set->callback([options] {
    auto value = nlohmann::json::parse(options->value, nullptr, false);
    if (value.is_discarded())
      fail({kExitUsage, "value '" + options->value + "' is not JSON; quote strings, e.g. '\"" +
                            options->value + "\"'"},
           options->json);
    DaemonClient client(options->connection);
    DaemonReply reply = expectSuccess(
        client.put("/v1/state/" + urlEncodeKey(options->key), {{"value", value}}), options->json);
    if (options->json)
      std::cout << reply.body.dump(2) << "\n";
    else
      std::cout << options->key << " set at revision " << reply.body.value("revision", 0ull)
                << "\n";
  });
  remove->callback([options] {
    DaemonClient client(options->connection);
    DaemonReply reply =
        expectSuccess(client.remove("/v1/state/" + urlEncodeKey(options->key)), options->json);
    if (options->json)
      std::cout << reply.body.dump(2) << "\n";
    else
      std::cout << options->key << " deleted at revision " << reply.body.value("revision", 0ull)
                << "\n";
  });
}

}  // namespace Atoll::cli
