#pragma once
// A client of QEMU's machine protocol (QMP): JSON messages, one per line,
// over a unix socket. Used to drive a live migration (`migrate`) and to
// follow it (`query-migrate`) for per-transfer progress accounting, and to
// hand QEMU a prepared connection to migrate over (`getfd`, SCM_RIGHTS).
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "migrate/qemu/MigrationStatus.h"
#include "util/Result.h"
#include "util/UniqueFd.h"

namespace Atoll::qemu {

class QmpClient {
 public:
  // Connects to QEMU's `-qmp unix:PATH,server=on,wait=off` socket, retrying
  // until `timeout` while QEMU has not created it yet (and for up to a second
  // while it refuses: created, not yet listening), reads the greeting and
  // leaves capability negotiation mode.
  static Result<QmpClient> connect(const std::string& socketPath,
                                   std::chrono::milliseconds timeout);

  // Runs one command and returns its "return" value; a QMP error reply is an
  // Error naming the command and QEMU's description. Asynchronous events
  // that arrive meanwhile are kept in events().
  Result<nlohmann::json> execute(const std::string& command,
                                 const nlohmann::json& arguments = nlohmann::json());

  Result<MigrationStatus> queryMigrate();
  // The run state: "running", "paused", "inmigrate", "postmigrate", ...
  Result<std::string> queryStatus();
  // Starts an outgoing migration to `uri` ("tcp:HOST:PORT", "unix:PATH",
  // "fd:NAME" for a descriptor passed with passFd on this connection).
  Result<void> migrate(const std::string& uri);
  // Starts the incoming side of a QEMU started with `-incoming defer`
  // (`migrate-incoming`); "fd:NAME" takes a descriptor from passFd.
  Result<void> migrateIncoming(const std::string& uri);
  // Gives QEMU a duplicate of `fd` under `name` (`getfd`): the descriptor
  // travels with SCM_RIGHTS in the same sendmsg as the command's first byte,
  // which is where QEMU's monitor looks for it. QEMU keeps it in this
  // monitor's table until a command such as `migrate fd:NAME` takes it, so
  // that command must go over this same connection. The caller's `fd` stays
  // open.
  Result<void> passFd(int fd, const std::string& name);
  // Polls query-migrate every `interval` until the migration finished (or
  // `timeout`), calling `onProgress` with each report.
  template <typename OnProgress>
  Result<MigrationStatus> waitForMigration(std::chrono::milliseconds timeout,
                                           std::chrono::milliseconds interval,
                                           OnProgress&& onProgress);

  const std::vector<nlohmann::json>& events() const { return events_; }
  const std::string& socketPath() const { return path_; }

 private:
  QmpClient(UniqueFd fd, std::string path, std::chrono::milliseconds timeout)
      : fd_(std::move(fd)), path_(std::move(path)), timeout_(timeout) {}
  Result<nlohmann::json> readMessage();
  // `passFd` >= 0 goes with the line's first byte (SCM_RIGHTS).
  Result<void> sendLine(const std::string& line, int passFd = -1);
  Result<nlohmann::json> executePassing(const std::string& command, const nlohmann::json& arguments,
                                        int passFd);
  void pause(std::chrono::milliseconds interval);

  UniqueFd fd_;
  std::string path_;
  std::chrono::milliseconds timeout_;  // per reply
  std::string buffer_;
  std::vector<nlohmann::json> events_;
};

template <typename OnProgress>
Result<MigrationStatus> QmpClient::waitForMigration(std::chrono::milliseconds timeout,
                                                    std::chrono::milliseconds interval,
                                                    OnProgress&& onProgress) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto status = queryMigrate();
    if (!status) return status.error();
    onProgress(*status);
    if (status->finished()) return status;
    if (std::chrono::steady_clock::now() >= deadline) {
      return Error::invalid(
          "query-migrate", path_, status->status,
          "migration did not finish within " + std::to_string(timeout.count()) + " ms");
    }
    pause(interval);
  }
}

}  // namespace Atoll::qemu
