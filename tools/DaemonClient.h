#pragma once
// How CLI verbs talk to atolld: HTTP/1.1 over the daemon's unix socket, using
// cpp-httplib's client with the connection step replaced (httplib 0.11 only
// dials TCP). Failures are values that verbs turn into a clear message and the
// shared exit codes: daemon not running, permission denied, request refused.
#include <CLI/CLI.hpp>

#include <nlohmann/json.hpp>
#include <string>

#include "util/Result.h"

namespace Atoll::cli {

// Where to reach the daemon; --socket, else $ATOLL_SOCKET, else the default.
struct DaemonConnection {
  std::string socketPath;
  double timeoutSeconds = 10;
};
// Adds --socket and --timeout to a verb.
void addDaemonOptions(CLI::App& verb, DaemonConnection& connection);
// --socket alone, for a verb whose own --timeout means something else.
void addDaemonSocketOption(CLI::App& verb, DaemonConnection& connection);

struct DaemonReply {
  int status = 0;
  nlohmann::json body;  // null when the body was not JSON
};

class DaemonClient {
 public:
  explicit DaemonClient(DaemonConnection connection);

  Result<DaemonReply> get(const std::string& path);
  Result<DaemonReply> put(const std::string& path, const nlohmann::json& body);
  Result<DaemonReply> post(const std::string& path, const nlohmann::json& body);
  Result<DaemonReply> remove(const std::string& path);

 private:
  DaemonConnection connection_;
};

struct VerbFailure {
  int exitCode = 1;
  std::string message;
};
// A call that never got an answer: no daemon, no permission, timeout.
VerbFailure describeFailure(const Error& error);
// An answer with a 4xx/5xx status.
VerbFailure describeErrorReply(const DaemonReply& reply);

// Prints the failure (as {"error":..., "exit_code":...} on stdout with --json,
// else on stderr) and ends the verb with its exit code.
[[noreturn]] void fail(const VerbFailure& failure, bool json);
// The reply on success; otherwise fails the verb.
DaemonReply expectSuccess(Result<DaemonReply> result, bool json);

// Encodes one path segment or key for a URL.
std::string urlEncodeKey(const std::string& key);

}  // namespace Atoll::cli
