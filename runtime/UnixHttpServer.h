#pragma once
// HTTP/1.1 on a unix socket with cpp-httplib doing all request parsing,
// routing and response writing. httplib 0.11 listens only on TCP, so this
// subclass supplies the unix listening socket and the per-connection loop:
// each connection's peer credentials (SO_PEERCRED) are read once and handed
// to the routes as trusted request headers (any client-sent header of the
// same name is removed first), and each request has a deadline
// (DeadlineStream) so slow clients cannot pin a worker thread.
#include <httplib.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "util/Result.h"
#include "util/UniqueFd.h"

namespace Atoll {

class UnixHttpServer : public httplib::Server {
 public:
  // Set by the server from the kernel's view of the peer; routes trust them.
  static constexpr const char* kPeerUidHeader = "Atoll-Peer-Uid";
  static constexpr const char* kPeerGidHeader = "Atoll-Peer-Gid";
  static constexpr const char* kPeerPidHeader = "Atoll-Peer-Pid";
  static constexpr const char* kPeerGroupsHeader = "Atoll-Peer-Groups";

  struct Options {
    std::string socketPath;
    std::optional<gid_t> socketGroup;  // chown the socket to this group
    mode_t socketMode = 0660;
    std::chrono::milliseconds requestTimeout{5000};
    std::chrono::milliseconds keepAliveTimeout{2000};
    size_t keepAliveMaxRequests = 100;
    unsigned threads = 4;
    size_t maxBodyBytes = 64 * 1024;
  };

  explicit UnixHttpServer(Options options);
  ~UnixHttpServer() override;

  // Creates the socket (and its directory when missing). A stale socket file
  // left by a dead daemon is replaced; a live daemon on the path, or a file
  // that is not a socket, is an error.
  Result<void> bindSocket();
  // Accepts connections until stop(); run it on a thread of its own.
  void serve();
  // Stops accepting; requests in progress finish, idle connections close.
  void stop();
  // Serves one connected socket until it closes, then closes it.
  void serveConnection(int fd);

  const std::string& socketPath() const { return options_.socketPath; }

  // Called after every response (status included), on the connection's
  // thread. Use this instead of httplib's set_logger(), which the server
  // needs for itself.
  using RequestObserver = std::function<void(const httplib::Request&, const httplib::Response&)>;
  void onRequestDone(RequestObserver observer) { observer_ = std::move(observer); }

 private:
  bool process_and_close_socket(socket_t sock) override;

  Options options_;
  RequestObserver observer_;
  UniqueFd stopEvent_;
  UniqueFd listenSocket_;  // owned here once stop() took it from httplib
  std::atomic<bool> stopping_{false};
  ino_t socketInode_ = 0;
};

}  // namespace Atoll
