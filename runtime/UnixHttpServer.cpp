#include "runtime/UnixHttpServer.h"

#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "runtime/DeadlineStream.h"
#include "runtime/PeerCredentials.h"

namespace Atoll {

namespace {

Result<sockaddr_un> socketAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path))
    return Error::invalid("bind", path, "", "unix socket path must be 1-107 bytes");
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

std::string parentOf(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// The status of the response just written on this thread's connection.
// httplib reports it only to the logger, and serveConnection() runs a
// connection's requests on one thread from start to end.
thread_local int lastResponseStatus = 0;

}  // namespace

UnixHttpServer::UnixHttpServer(Options options) : options_(std::move(options)) {
  stopEvent_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  unsigned threads = options_.threads == 0 ? 1 : options_.threads;
  new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  set_payload_max_length(options_.maxBodyBytes);
  auto timeout = std::chrono::duration_cast<std::chrono::seconds>(options_.requestTimeout);
  set_read_timeout(std::max<time_t>(1, timeout.count()));
  set_write_timeout(std::max<time_t>(1, timeout.count()));
  // Only for the Keep-Alive header httplib writes: the loop in
  // serveConnection() enforces these.
  set_keep_alive_max_count(options_.keepAliveMaxRequests);
  set_keep_alive_timeout(std::max<time_t>(
      1, std::chrono::duration_cast<std::chrono::seconds>(options_.keepAliveTimeout).count()));
  set_logger([this](const httplib::Request& request, const httplib::Response& response) {
    lastResponseStatus = response.status;
    if (observer_) observer_(request, response);
  });
}

UnixHttpServer::~UnixHttpServer() {
  stop();
  listenSocket_.reset();
  // Remove our socket file, unless something else has replaced it since.
  struct stat st {};
  if (socketInode_ != 0 && ::lstat(options_.socketPath.c_str(), &st) == 0 &&
      st.st_ino == socketInode_)
    ::unlink(options_.socketPath.c_str());
}

Result<void> UnixHttpServer::bindSocket() {
  const std::string& path = options_.socketPath;
  auto addr = socketAddress(path);
  if (!addr) return addr.error();

  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return Error::invalid("bind", path, "", "exists and is not a socket; not replacing it");
    int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0) return Error::fromErrno("socket", path, errno);
    UniqueFd probeOwner(probe);
    if (::connect(probe, reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) == 0)
      return Error::invalid("bind", path, "", "another atolld is serving this socket");
    if (errno != ECONNREFUSED) return Error::fromErrno("connect", path, errno);
    if (::unlink(path.c_str()) != 0) return Error::fromErrno("unlink stale socket", path, errno);
  }

  std::string parent = parentOf(path);
  if (::mkdir(parent.c_str(), 0755) != 0 && errno != EEXIST)
    return Error::fromErrno("mkdir", parent, errno);

  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error::fromErrno("socket", path, errno);
  UniqueFd owner(fd);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof *addr) != 0)
    return Error::fromErrno("bind", path, errno);
  // bind() created the file with mode 0777 & ~umask; connecting needs write
  // permission, so tighten before listen() lets anyone in.
  if (::chmod(path.c_str(), options_.socketMode) != 0)
    return Error::fromErrno("chmod", path, errno, std::to_string(options_.socketMode));
  if (options_.socketGroup &&
      ::chown(path.c_str(), static_cast<uid_t>(-1), *options_.socketGroup) != 0)
    return Error::fromErrno("chown", path, errno, "gid " + std::to_string(*options_.socketGroup));
  if (::listen(fd, 64) != 0) return Error::fromErrno("listen", path, errno);
  if (::lstat(path.c_str(), &st) == 0) socketInode_ = st.st_ino;
  svr_sock_ = owner.release();
  return ok();
}

void UnixHttpServer::serve() {
  if (stopping_) return;
  listen_after_bind();
}

void UnixHttpServer::stop() {
  if (stopping_.exchange(true)) return;
  uint64_t one = 1;
  if (stopEvent_.valid()) {
    [[maybe_unused]] ssize_t n = ::write(stopEvent_.get(), &one, sizeof one);
  }
  // Taking the descriptor out of svr_sock_ first tells httplib's accept loop
  // that the failure of accept() which follows is a requested stop.
  // shutdown() wakes a blocked accept(); the descriptor is closed only in
  // the destructor, once no thread can still be inside accept() on it.
  int fd = svr_sock_.exchange(INVALID_SOCKET);
  if (fd != INVALID_SOCKET) {
    ::shutdown(fd, SHUT_RDWR);
    listenSocket_.reset(fd);
  }
}

bool UnixHttpServer::process_and_close_socket(socket_t sock) {
  serveConnection(sock);
  return true;
}

void UnixHttpServer::serveConnection(int fd) {
  auto peer = readPeerCredentials(fd);
  std::string remote = peer ? "unix:uid=" + std::to_string(peer->uid) : "unix:unknown";
  DeadlineStream stream(fd, remote, peer ? static_cast<int>(peer->pid) : 0);

  auto setupRequest = [&](httplib::Request& request) {
    for (const char* name : {kPeerUidHeader, kPeerGidHeader, kPeerPidHeader, kPeerGroupsHeader})
      request.headers.erase(name);
    // Without Content-Length or Transfer-Encoding a request has no body
    // (RFC 9112 6.3); httplib would read one until the client stops
    // sending, whatever the body limit.
    if (!request.has_header("Content-Length") && !request.has_header("Transfer-Encoding"))
      request.headers.emplace("Content-Length", "0");
    if (!peer) return;  // no identity headers: the routes refuse the request
    std::string groups;
    for (gid_t g : peer->groups) groups += (groups.empty() ? "" : ",") + std::to_string(g);
    request.headers.emplace(kPeerUidHeader, std::to_string(peer->uid));
    request.headers.emplace(kPeerGidHeader, std::to_string(peer->gid));
    request.headers.emplace(kPeerPidHeader, std::to_string(peer->pid));
    request.headers.emplace(kPeerGroupsHeader, groups);
  };

  int stopFd = stopEvent_.valid() ? stopEvent_.get() : -1;
  for (size_t served = 0; served < options_.keepAliveMaxRequests; ++served) {
    auto idleLimit = served == 0 ? options_.requestTimeout : options_.keepAliveTimeout;
    if (!stream.waitForRequest(DeadlineStream::Clock::now() + idleLimit, stopFd)) break;
    stream.setDeadline(DeadlineStream::Clock::now() + options_.requestTimeout);
    bool closeAfter = served + 1 == options_.keepAliveMaxRequests || stopping_;
    bool clientClosed = false;
    lastResponseStatus = 0;
    if (!process_request(stream, closeAfter, clientClosed, setupRequest)) break;
    // After an error the rest of the stream cannot be trusted to start a new
    // request (httplib stops reading where parsing failed).
    if (clientClosed || closeAfter || lastResponseStatus >= 400) break;
  }
  ::shutdown(fd, SHUT_RDWR);
  ::close(fd);
}

}  // namespace Atoll
