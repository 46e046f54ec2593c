#include "kernel-configs/LibvirtProbe.h"

#include <fcntl.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "util/Error.h"
#include "util/UniqueFd.h"

namespace Atoll::capability {

namespace {

constexpr const char* kFeature = "libvirt";
constexpr const char* kFix =
    "Debian package libvirt-daemon-system; start the daemon (systemctl start libvirtd, or "
    "virtlogd -d && libvirtd -d)";
// The child's first byte says how the connection went.
constexpr char kConnected = '+';
constexpr char kFailed = '-';

std::string versionText(unsigned long version) {
  return std::to_string(version / 1000000) + "." + std::to_string(version / 1000 % 1000) + "." +
         std::to_string(version % 1000);
}

void ignoreLibvirtError(void*, virErrorPtr) {}

// Runs in the child: connect, describe, write one message, exit.
[[noreturn]] void connectAndReport(const std::string& uri, int out) {
  virSetErrorFunc(nullptr, ignoreLibvirtError);
  std::string message;
  virConnectPtr connection = virConnectOpenReadOnly(uri.c_str());
  if (connection == nullptr) {
    const char* error = virGetLastErrorMessage();
    message = std::string(1, kFailed) + (error != nullptr ? error : "connection refused");
  } else {
    unsigned long library = 0;
    unsigned long hypervisor = 0;
    message = std::string(1, kConnected) + "connected read-only to " + uri;
    if (virConnectGetLibVersion(connection, &library) == 0)
      message += ": libvirt " + versionText(library);
    if (virConnectGetVersion(connection, &hypervisor) == 0 && hypervisor != 0)
      message += ", hypervisor " + versionText(hypervisor);
    virConnectClose(connection);
  }
  std::size_t written = 0;
  while (written < message.size()) {
    ssize_t n = ::write(out, message.data() + written, message.size() - written);
    if (n <= 0) break;
    written += static_cast<std::size_t>(n);
  }
  ::_exit(0);
}

}  // namespace

Feature probeLibvirt(const std::string& uri, std::chrono::milliseconds timeout) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    return Feature::absent(kFeature, false,
                           Error::fromErrno("pipe2", "libvirt probe", errno).message(), kFix);
  UniqueFd readEnd(fds[0]);
  UniqueFd writeEnd(fds[1]);
  pid_t child = ::fork();
  if (child < 0)
    return Feature::absent(kFeature, false,
                           Error::fromErrno("fork", "libvirt probe", errno).message(), kFix);
  if (child == 0) {
    readEnd.reset();
    connectAndReport(uri, writeEnd.get());
  }
  writeEnd.reset();

  std::string message;
  bool finished = false;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd entry{readEnd.get(), POLLIN, 0};
    int ready = ::poll(&entry, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) break;
    char buffer[512];
    ssize_t n = ::read(readEnd.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      finished = true;  // end of file: the child wrote everything and exited
      break;
    }
    message.append(buffer, static_cast<std::size_t>(n));
  }
  if (!finished) ::kill(child, SIGKILL);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }

  if (!finished)
    return Feature::absent(
        kFeature, false,
        "no answer from " + uri + " within " + std::to_string(timeout.count()) + " ms", kFix);
  if (message.empty())
    return Feature::absent(kFeature, false, "the libvirt client exited without an answer", kFix);
  std::string text = message.substr(1);
  if (message.front() == kConnected) return Feature::ok(kFeature, false, text);
  return Feature::absent(kFeature, false, "cannot connect to " + uri + ": " + text, kFix);
}

}  // namespace Atoll::capability
