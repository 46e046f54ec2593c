#include "tools/DaemonClient.h"

#include <httplib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "runtime/ApiDefaults.h"
#include "tools/NumberOptions.h"
#include "tools/Verbs.h"

namespace Atoll::cli {

namespace {

// httplib's client with a unix-socket connect; everything above the socket
// (request writing, response parsing) stays httplib's.
class UnixSocketClient final : public httplib::ClientImpl {
 public:
  explicit UnixSocketClient(std::string socketPath)
      : httplib::ClientImpl("localhost"), socketPath_(std::move(socketPath)) {}

  int connectErrno() const { return connectErrno_; }

 protected:
  bool create_and_connect_socket(Socket& socket, httplib::Error& error) override {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (socketPath_.empty() || socketPath_.size() >= sizeof addr.sun_path) {
      connectErrno_ = ENAMETOOLONG;
      error = httplib::Error::Connection;
      return false;
    }
    std::memcpy(addr.sun_path, socketPath_.data(), socketPath_.size());
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      connectErrno_ = errno;
      error = httplib::Error::Connection;
      return false;
    }
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      connectErrno_ = errno;
      ::close(fd);
      error = httplib::Error::Connection;
      return false;
    }
    socket.sock = fd;
    return true;
  }

 private:
  std::string socketPath_;
  int connectErrno_ = 0;
};

Result<DaemonReply> finish(UnixSocketClient& client, httplib::Result result,
                           const std::string& method, const std::string& socketPath,
                           const std::string& path) {
  if (!result) {
    if (client.connectErrno() != 0)
      return Error::fromErrno("connect", socketPath, client.connectErrno());
    return Error::invalid(method + " " + path, socketPath, "",
                          "no answer from atolld: " + httplib::to_string(result.error()));
  }
  DaemonReply reply;
  reply.status = result->status;
  reply.body = nlohmann::json::parse(result->body, nullptr, false);
  if (reply.body.is_discarded()) reply.body = nullptr;
  return reply;
}

void configure(UnixSocketClient& client, double timeoutSeconds) {
  auto micros = static_cast<long long>(timeoutSeconds * 1e6);
  auto seconds = static_cast<time_t>(micros / 1'000'000);
  auto rest = static_cast<time_t>(micros % 1'000'000);
  client.set_read_timeout(seconds, rest);
  client.set_write_timeout(seconds, rest);
  client.set_connection_timeout(seconds, rest);
}

}  // namespace

void addDaemonSocketOption(CLI::App& verb, DaemonConnection& connection) {
  const char* fromEnvironment = std::getenv("ATOLL_SOCKET");
  connection.socketPath = fromEnvironment != nullptr ? fromEnvironment : kDefaultSocketPath;
  verb.add_option(
      "--socket", connection.socketPath,
      std::string("atolld's API socket (default: $ATOLL_SOCKET, else ") + kDefaultSocketPath + ")");
}

void addDaemonOptions(CLI::App& verb, DaemonConnection& connection) {
  addDaemonSocketOption(verb, connection);
  verb.add_option("--timeout", connection.timeoutSeconds, "Seconds to wait for atolld")
      ->check(kFiniteNumber)
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
}

DaemonClient::DaemonClient(DaemonConnection connection) : connection_(std::move(connection)) {}

Result<DaemonReply> DaemonClient::get(const std::string& path) {
  UnixSocketClient client(connection_.socketPath);
  configure(client, connection_.timeoutSeconds);
  return finish(client, client.Get(path), "GET", connection_.socketPath, path);
}

Result<DaemonReply> DaemonClient::put(const std::string& path, const nlohmann::json& body) {
  UnixSocketClient client(connection_.socketPath);
  configure(client, connection_.timeoutSeconds);
  return finish(client, client.Put(path, body.dump(), "application/json"), "PUT",
                connection_.socketPath, path);
}

Result<DaemonReply> DaemonClient::post(const std::string& path, const nlohmann::json& body) {
  UnixSocketClient client(connection_.socketPath);
  configure(client, connection_.timeoutSeconds);
  return finish(client, client.Post(path, body.dump(), "application/json"), "POST",
                connection_.socketPath, path);
}

Result<DaemonReply> DaemonClient::remove(const std::string& path) {
  UnixSocketClient client(connection_.socketPath);
  configure(client, connection_.timeoutSeconds);
  return finish(client, client.Delete(path), "DELETE", connection_.socketPath, path);
}

VerbFailure describeFailure(const Error& error) {
  switch (error.errnum) {
    case ENOENT:
    case ECONNREFUSED:
      return {kExitUnavailable, "atolld is not running: nothing is listening on " + error.path +
                                    " (" + std::strerror(error.errnum) + ")"};
    case EACCES:
    case EPERM:
      return {kExitPermission, "permission denied on " + error.path +
                                   ": the API is open to root and members of group atoll"};
    default:
      return {kExitUnavailable, "cannot reach atolld: " + error.message()};
  }
}

VerbFailure describeErrorReply(const DaemonReply& reply) {
  std::string reason = "HTTP status " + std::to_string(reply.status);
  if (reply.body.is_object() && reply.body.contains("error") && reply.body["error"].is_string())
    reason = reply.body["error"].get<std::string>();
  if (reply.status == 403) return {kExitPermission, "atolld refused the request: " + reason};
  return {kExitFailure, "atolld: " + reason};
}

void fail(const VerbFailure& failure, bool json) {
  if (json)
    std::cout << nlohmann::json{{"error", failure.message}, {"exit_code", failure.exitCode}}.dump(2)
              << "\n";
  else
    std::cerr << "atoll: " << failure.message << "\n";
  throw CLI::RuntimeError(failure.exitCode);
}

DaemonReply expectSuccess(Result<DaemonReply> result, bool json) {
  if (!result) fail(describeFailure(result.error()), json);
  if (result->status >= 400) fail(describeErrorReply(*result), json);
  return std::move(*result);
}

std::string urlEncodeKey(const std::string& key) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : key) {
    bool plain = std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '/' || c == ':';
    if (plain) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 0xf]);
    }
  }
  return out;
}

}  // namespace Atoll::cli
