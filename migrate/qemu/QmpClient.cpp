#include "migrate/qemu/QmpClient.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <thread>

namespace Atoll::qemu {

namespace {

// A reply larger than this is not QMP talking.
constexpr size_t kMaxMessageBytes = 16 << 20;
// QEMU binds its QMP socket, then listens: a connect in between is refused.
// Refusals for longer than this are a socket left behind by a QEMU that is
// gone, and fail without waiting out the whole timeout.
constexpr std::chrono::milliseconds kRefusedGrace{1000};

}  // namespace

Result<QmpClient> QmpClient::connect(const std::string& socketPath,
                                     std::chrono::milliseconds timeout) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socketPath.size() >= sizeof address.sun_path) {
    return Error::invalid("connect", socketPath, socketPath, "unix socket path is too long");
  }
  std::memcpy(address.sun_path, socketPath.c_str(), socketPath.size() + 1);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::optional<std::chrono::steady_clock::time_point> refusedSince;
  UniqueFd fd;
  for (;;) {
    fd = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return Error::fromErrno("socket", socketPath, errno);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) break;
    const int error = errno;
    const auto now = std::chrono::steady_clock::now();
    // QEMU creates the socket a moment after it starts (ENOENT until then),
    // and listens a moment after creating it.
    bool notYet = error == ENOENT;
    if (error == ECONNREFUSED) {
      if (!refusedSince) refusedSince = now;
      notYet = now - *refusedSince < kRefusedGrace;
    }
    if (!notYet || now >= deadline) {
      return Error::fromErrno("connect", socketPath, error);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  QmpClient client(std::move(fd), socketPath, timeout);
  // QEMU 7.2 can send an event ahead of the greeting to a client it has
  // just accepted: seen on this host from a QEMU started with -incoming,
  // whose MIGRATION "setup" event came first. Such events are kept.
  for (;;) {
    auto greeting = client.readMessage();
    if (!greeting) return greeting.error();
    if (greeting->contains("event")) {
      client.events_.push_back(std::move(*greeting));
      continue;
    }
    if (!greeting->contains("QMP")) {
      return Error::invalid("qmp greeting", socketPath, greeting->dump(), "not a QMP greeting");
    }
    break;
  }
  if (auto r = client.execute("qmp_capabilities"); !r) return r.error();
  return client;
}

Result<void> QmpClient::sendLine(const std::string& line, int passFd) {
  size_t sent = 0;
  if (passFd >= 0) {
    iovec data{const_cast<char*>(line.data()), line.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr message{};
    message.msg_iov = &data;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof control;
    cmsghdr* rights = CMSG_FIRSTHDR(&message);
    rights->cmsg_level = SOL_SOCKET;
    rights->cmsg_type = SCM_RIGHTS;
    rights->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(rights), &passFd, sizeof(int));
    ssize_t n;
    do {
      n = ::sendmsg(fd_.get(), &message, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return Error::fromErrno("sendmsg", path_, errno, line);
    // The descriptor went with the first byte; the rest is plain text.
    sent = static_cast<size_t>(n);
  }
  while (sent < line.size()) {
    ssize_t n = ::send(fd_.get(), line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::fromErrno("send", path_, errno, line);
    sent += static_cast<size_t>(n);
  }
  return ok();
}

Result<nlohmann::json> QmpClient::readMessage() {
  auto deadline = std::chrono::steady_clock::now() + timeout_;
  for (;;) {
    size_t newline = buffer_.find('\n');
    if (newline != std::string::npos) {
      std::string line = buffer_.substr(0, newline);
      buffer_.erase(0, newline + 1);
      if (line.find_first_not_of(" \r\t") == std::string::npos) continue;
      auto parsed = nlohmann::json::parse(line, nullptr, false);
      if (parsed.is_discarded() || !parsed.is_object()) {
        return Error::invalid("parse", path_, line, "QMP message is not a JSON object");
      }
      return parsed;
    }
    if (buffer_.size() > kMaxMessageBytes) {
      return Error::invalid("recv", path_, buffer_.substr(0, 200),
                            "QMP message longer than " + std::to_string(kMaxMessageBytes));
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return Error::fromErrno("recv", path_, ETIMEDOUT, "no QMP reply");
    }
    pollfd p{fd_.get(), POLLIN, 0};
    int ready = ::poll(&p, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return Error::fromErrno("poll", path_, errno);
    if (ready == 0) continue;
    char chunk[4096];
    ssize_t n = ::recv(fd_.get(), chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::fromErrno("recv", path_, errno);
    if (n == 0) return Error::fromErrno("recv", path_, ECONNRESET, "QEMU closed the QMP socket");
    buffer_.append(chunk, static_cast<size_t>(n));
  }
}

Result<nlohmann::json> QmpClient::execute(const std::string& command,
                                          const nlohmann::json& arguments) {
  return executePassing(command, arguments, -1);
}

Result<nlohmann::json> QmpClient::executePassing(const std::string& command,
                                                 const nlohmann::json& arguments, int passFd) {
  nlohmann::json request{{"execute", command}};
  if (!arguments.is_null()) request["arguments"] = arguments;
  if (auto s = sendLine(request.dump() + "\n", passFd); !s) return s.error();
  for (;;) {
    auto message = readMessage();
    if (!message) return message.error();
    if (message->contains("event")) {
      events_.push_back(std::move(*message));
      continue;
    }
    if (auto error = message->find("error"); error != message->end()) {
      std::string desc = error->is_object() ? error->value("desc", error->dump()) : error->dump();
      return Error::invalid("qmp " + command, path_, request.dump(), desc);
    }
    if (auto value = message->find("return"); value != message->end()) return *value;
    return Error::invalid("qmp " + command, path_, message->dump(),
                          "reply has neither 'return' nor 'error'");
  }
}

Result<MigrationStatus> QmpClient::queryMigrate() {
  auto reply = execute("query-migrate");
  if (!reply) return reply.error();
  return parseQueryMigrate(*reply);
}

Result<std::string> QmpClient::queryStatus() {
  auto reply = execute("query-status");
  if (!reply) return reply.error();
  auto status = reply->find("status");
  if (status == reply->end() || !status->is_string()) {
    return Error::invalid("qmp query-status", path_, reply->dump(), "no 'status' string");
  }
  return status->get<std::string>();
}

Result<void> QmpClient::migrate(const std::string& uri) {
  auto reply = execute("migrate", {{"uri", uri}});
  if (!reply) return reply.error();
  return ok();
}

Result<void> QmpClient::migrateIncoming(const std::string& uri) {
  auto reply = execute("migrate-incoming", {{"uri", uri}});
  if (!reply) return reply.error();
  return ok();
}

Result<void> QmpClient::passFd(int fd, const std::string& name) {
  if (fd < 0) return Error::invalid("getfd", path_, std::to_string(fd), "not a descriptor");
  auto reply = executePassing("getfd", {{"fdname", name}}, fd);
  if (!reply) return reply.error();
  return ok();
}

void QmpClient::pause(std::chrono::milliseconds interval) {
  std::this_thread::sleep_for(interval);
}

}  // namespace Atoll::qemu
