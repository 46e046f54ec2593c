#include "runtime/DeadlineStream.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace Atoll {

namespace {

int millisecondsUntil(DeadlineStream::Clock::time_point until) {
  auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(until - DeadlineStream::Clock::now());
  if (left.count() <= 0) return 0;
  return static_cast<int>(std::min<long long>(left.count(), 60'000));
}

}  // namespace

DeadlineStream::DeadlineStream(int fd, std::string remoteDescription, int remotePort)
    : fd_(fd),
      remoteDescription_(std::move(remoteDescription)),
      remotePort_(remotePort),
      deadline_(Clock::now()) {}

bool DeadlineStream::waitFor(short events) const {
  for (;;) {
    pollfd p{fd_, events, 0};
    int timeout = millisecondsUntil(deadline_);
    int rc = ::poll(&p, 1, timeout);
    if (rc > 0) return true;
    if (rc == 0) {
      if (Clock::now() >= deadline_) return false;
      continue;  // the 60 s cap above, not the deadline
    }
    if (errno != EINTR) return false;
  }
}

bool DeadlineStream::waitForRequest(Clock::time_point until, int stopFd) {
  if (begin_ < end_) return true;
  for (;;) {
    pollfd p[2] = {{fd_, POLLIN, 0}, {stopFd, POLLIN, 0}};
    int rc = ::poll(p, stopFd >= 0 ? 2 : 1, millisecondsUntil(until));
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) {
      if (rc == 0 && Clock::now() < until) continue;
      return false;
    }
    if (stopFd >= 0 && (p[1].revents & POLLIN)) return false;
    return (p[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
  }
}

bool DeadlineStream::is_readable() const {
  return begin_ < end_ || waitFor(POLLIN);
}

bool DeadlineStream::is_writable() const {
  return waitFor(POLLOUT);
}

ssize_t DeadlineStream::read(char* ptr, size_t size) {
  if (begin_ == end_) {
    if (!waitFor(POLLIN)) {
      errno = ETIMEDOUT;
      return -1;
    }
    ssize_t n;
    do {
      n = ::recv(fd_, buffer_, sizeof buffer_, 0);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) return n;
    begin_ = 0;
    end_ = static_cast<size_t>(n);
  }
  size_t count = std::min(size, end_ - begin_);
  std::memcpy(ptr, buffer_ + begin_, count);
  begin_ += count;
  return static_cast<ssize_t>(count);
}

ssize_t DeadlineStream::write(const char* ptr, size_t size) {
  if (!waitFor(POLLOUT)) {
    errno = ETIMEDOUT;
    return -1;
  }
  ssize_t n;
  do {
    n = ::send(fd_, ptr, size, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  return n;
}

void DeadlineStream::get_remote_ip_and_port(std::string& ip, int& port) const {
  ip = remoteDescription_;
  port = remotePort_;
}

void DeadlineStream::get_local_ip_and_port(std::string& ip, int& port) const {
  ip = "unix";
  port = 0;
}

}  // namespace Atoll
