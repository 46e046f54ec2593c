#pragma once
// A cpp-httplib Stream over a connected unix socket that enforces a deadline
// for the whole request, not just for each read: a client that trickles one
// byte at a time (or stops sending) loses its connection when the deadline
// passes, so slow clients cannot hold an API thread indefinitely. Reads are
// buffered because httplib reads request lines one byte at a time.
#include <httplib.h>

#include <chrono>
#include <string>

namespace Atoll {

class DeadlineStream final : public httplib::Stream {
 public:
  using Clock = std::chrono::steady_clock;

  // `remoteDescription` stands in for the peer address httplib logs.
  DeadlineStream(int fd, std::string remoteDescription, int remotePort);

  void setDeadline(Clock::time_point deadline) { deadline_ = deadline; }
  // Waits until request bytes are available, `until` passes, or `stopFd`
  // becomes readable (daemon stopping). True when bytes are available.
  bool waitForRequest(Clock::time_point until, int stopFd);

  bool is_readable() const override;
  bool is_writable() const override;
  ssize_t read(char* ptr, size_t size) override;
  ssize_t write(const char* ptr, size_t size) override;
  void get_remote_ip_and_port(std::string& ip, int& port) const override;
  void get_local_ip_and_port(std::string& ip, int& port) const override;
  socket_t socket() const override { return fd_; }

 private:
  bool waitFor(short events) const;

  int fd_;
  std::string remoteDescription_;
  int remotePort_;
  Clock::time_point deadline_;
  char buffer_[4096];
  size_t begin_ = 0;
  size_t end_ = 0;
};

}  // namespace Atoll
