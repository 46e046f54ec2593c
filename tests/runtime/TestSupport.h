#pragma once
// Helpers shared by the runtime and CLI tests: temporary directories, raw
// HTTP over a unix socket (so malformed requests can be sent byte for byte),
// and an atolld child process whose readiness is read from its systemd
// notification socket.
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "util/UniqueFd.h"

namespace Atoll::test {

class TempDir {
 public:
  TempDir();  // /tmp/atoll-test-XXXXXX, mode 0755 so dropped-privilege children can reach it
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

void writeTextFile(const std::string& path, const std::string& text);
std::string readTextFile(const std::string& path);

struct RawResponse {
  int connectErrno = 0;  // non-zero when connect() failed
  int status = 0;        // 0 when no status line came back
  std::string head;
  std::string body;
  std::string raw;
};

// Connects, sends `bytes`, half-closes unless `keepWriting`, reads until the
// server closes or `timeout` passes.
RawResponse rawExchange(const std::string& socketPath, const std::string& bytes,
                        std::chrono::milliseconds timeout = std::chrono::seconds(5));
// Parses one HTTP response (status line, head, body) out of raw bytes.
RawResponse parseRawResponse(std::string raw);
// A well-formed request with Connection: close.
std::string httpRequest(const std::string& method, const std::string& path,
                        const std::string& body = {},
                        const std::string& contentType = "application/json");
UniqueFd connectUnix(const std::string& socketPath, int* errnoOut = nullptr);

// The atolld binary built with this tree.
std::string atolldPath();

// atolld's arguments for a daemon that keeps everything in `dir`: the API
// socket atolld.sock, the state directory state, a metrics port the kernel
// picks, and `dir`'s atolld.toml when `withConfig`.
std::vector<std::string> daemonArgsIn(const TempDir& dir, bool withConfig = false);

class DaemonProcess {
 public:
  // Starts atolld with `args`, stderr to `logPath`, NOTIFY_SOCKET in `dir`;
  // waits for READY=1. nullptr (with the log in `failure`) when it exits or
  // does not become ready within `timeout`.
  static std::unique_ptr<DaemonProcess> start(
      const std::string& dir, const std::vector<std::string>& args, std::string* failure = nullptr,
      std::chrono::milliseconds timeout = std::chrono::seconds(15));
  ~DaemonProcess();

  pid_t pid() const { return pid_; }
  void signal(int signo) const;
  // The wait status once it exits within `timeout`; nullopt otherwise.
  std::optional<int> waitExit(std::chrono::milliseconds timeout);
  // Waits for the next notification datagram containing `text`.
  bool waitNotification(const std::string& text, std::chrono::milliseconds timeout);
  std::string log() const;
  // Waits until the log holds `text`: the daemon logs from its own thread,
  // so a line may land after the notification or reply that follows it.
  bool waitLog(const std::string& text, std::chrono::milliseconds timeout) const;

 private:
  DaemonProcess() = default;
  pid_t pid_ = -1;
  bool exited_ = false;
  UniqueFd notify_;
  std::string logPath_;
};

}  // namespace Atoll::test
