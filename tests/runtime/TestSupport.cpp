#include "tests/runtime/TestSupport.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace Atoll::test {

using Clock = std::chrono::steady_clock;

TempDir::TempDir() {
  char pattern[] = "/tmp/atoll-test-XXXXXX";
  if (::mkdtemp(pattern) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
  ::chmod(path_.c_str(), 0755);
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

void writeTextFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc | std::ios::binary);
  out << text;
}

std::string readTextFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

UniqueFd connectUnix(const std::string& socketPath, int* errnoOut) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, socketPath.data(),
              std::min(socketPath.size(), sizeof(addr.sun_path) - 1));
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (errnoOut != nullptr) *errnoOut = errno;
    return UniqueFd();
  }
  if (errnoOut != nullptr) *errnoOut = 0;
  return fd;
}

RawResponse parseRawResponse(std::string raw) {
  RawResponse out;
  out.raw = raw;
  size_t end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.1 ", 0) == 0 && raw.size() >= 12) out.status = std::atoi(raw.c_str() + 9);
  if (end != std::string::npos) {
    out.head = raw.substr(0, end);
    out.body = raw.substr(end + 4);
  } else {
    out.head = raw;
  }
  return out;
}

RawResponse rawExchange(const std::string& socketPath, const std::string& bytes,
                        std::chrono::milliseconds timeout) {
  int error = 0;
  UniqueFd fd = connectUnix(socketPath, &error);
  if (!fd.valid()) {
    RawResponse out;
    out.connectErrno = error;
    return out;
  }
  size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = ::send(fd.get(), bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may answer (413) and close before reading everything
    sent += static_cast<size_t>(n);
  }
  ::shutdown(fd.get(), SHUT_WR);
  std::string raw;
  auto deadline = Clock::now() + timeout;
  char buffer[8192];
  while (Clock::now() < deadline) {
    pollfd p{fd.get(), POLLIN, 0};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (::poll(&p, 1, static_cast<int>(std::max<long long>(left.count(), 1))) <= 0) break;
    ssize_t n = ::recv(fd.get(), buffer, sizeof buffer, 0);
    if (n <= 0) break;
    raw.append(buffer, static_cast<size_t>(n));
  }
  return parseRawResponse(std::move(raw));
}

std::string httpRequest(const std::string& method, const std::string& path, const std::string& body,
                        const std::string& contentType) {
  std::string out = method + " " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n";
  if (!body.empty() || method == "PUT")
    out += "Content-Type: " + contentType + "\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n";
  out += "\r\n" + body;
  return out;
}

std::string atolldPath() {
  return ATOLLD_PATH;
}

std::vector<std::string> daemonArgsIn(const TempDir& dir, bool withConfig) {
  std::vector<std::string> args;
  if (withConfig) args = {"--config", dir.file("atolld.toml")};
  for (std::string arg :
       {std::string("--socket"), dir.file("atolld.sock"), std::string("--state-dir"),
        dir.file("state"), std::string("--metrics-listen"), std::string("127.0.0.1:0")})
    args.push_back(std::move(arg));
  return args;
}

std::unique_ptr<DaemonProcess> DaemonProcess::start(const std::string& dir,
                                                    const std::vector<std::string>& args,
                                                    std::string* failure,
                                                    std::chrono::milliseconds timeout) {
  std::unique_ptr<DaemonProcess> process(new DaemonProcess());
  std::string notifyPath = dir + "/notify.sock";
  ::unlink(notifyPath.c_str());
  process->notify_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, notifyPath.data(), notifyPath.size());
  if (::bind(process->notify_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    throw std::runtime_error("bind notify socket: " + std::string(std::strerror(errno)));
  process->logPath_ = dir + "/atolld.log";

  std::string binary = atolldPath();
  std::vector<std::string> argvStrings = {binary};
  argvStrings.insert(argvStrings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argvStrings) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::string notifyEnv = "NOTIFY_SOCKET=" + notifyPath;
  std::vector<std::string> envStrings = {notifyEnv, "PATH=/usr/sbin:/usr/bin:/sbin:/bin"};
  std::vector<char*> envp;
  for (auto& e : envStrings) envp.push_back(e.data());
  envp.push_back(nullptr);
  int logFd = ::open(process->logPath_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(logFd, STDERR_FILENO);
    ::dup2(logFd, STDOUT_FILENO);
    ::execve(binary.c_str(), argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(logFd);
  process->pid_ = pid;
  if (!process->waitNotification("READY=1", timeout)) {
    if (failure != nullptr) *failure = process->log();
    return nullptr;
  }
  return process;
}

DaemonProcess::~DaemonProcess() {
  if (pid_ > 0 && !exited_) {
    ::kill(pid_, SIGKILL);
    int status;
    ::waitpid(pid_, &status, 0);
  }
}

void DaemonProcess::signal(int signo) const {
  ::kill(pid_, signo);
}

std::optional<int> DaemonProcess::waitExit(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t done = ::waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      exited_ = true;
      return status;
    }
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

bool DaemonProcess::waitNotification(const std::string& text, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    pollfd p{notify_.get(), POLLIN, 0};
    if (::poll(&p, 1, 20) > 0) {
      char buffer[4096];
      ssize_t n = ::recv(notify_.get(), buffer, sizeof buffer, 0);
      if (n > 0 && std::string(buffer, static_cast<size_t>(n)).find(text) != std::string::npos)
        return true;
      continue;
    }
    int status = 0;
    if (!exited_ && ::waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      return false;
    }
  }
  return false;
}

std::string DaemonProcess::log() const {
  return readTextFile(logPath_);
}

bool DaemonProcess::waitLog(const std::string& text, std::chrono::milliseconds timeout) const {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    if (log().find(text) != std::string::npos) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace Atoll::test
