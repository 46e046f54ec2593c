#pragma once
// A unix socket that accepts libvirt's client and never answers it, as a
// hung libvirtd does (stopped, deadlocked, or a main loop stuck behind a
// QEMU monitor). Point a real libvirt client at uri(); close() ends the
// client's wait with an error, as a libvirtd that dies does.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <string>

#include "util/UniqueFd.h"

namespace Atoll::test {

class SilentLibvirtd {
 public:
  // `name` keeps the socket of each test binary apart.
  explicit SilentLibvirtd(const std::string& name) {
    dir_ = std::filesystem::temp_directory_path() /
           ("atoll-silent-libvirtd-" + name + "-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "libvirt-sock").string();
    fd_ = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, path_.c_str(), path_.size() + 1);
    bound_ = ::bind(fd_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
             ::listen(fd_.get(), 8) == 0;
  }
  ~SilentLibvirtd() {
    close();
    std::filesystem::remove_all(dir_);
  }
  SilentLibvirtd(const SilentLibvirtd&) = delete;
  SilentLibvirtd& operator=(const SilentLibvirtd&) = delete;

  void close() { fd_ = UniqueFd(); }
  bool bound() const { return bound_; }
  std::string uri() const { return "qemu+unix:///system?socket=" + path_; }

 private:
  std::filesystem::path dir_;
  std::string path_;
  UniqueFd fd_;
  bool bound_ = false;
};

}  // namespace Atoll::test
