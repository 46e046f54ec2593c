#include "util/Fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace Atoll {

namespace {

Result<std::string> readAllFrom(int fd, const std::string& path) {
  std::string out;
  char buffer[8192];
  off_t offset = 0;
  for (;;) {
    ssize_t n = ::pread(fd, buffer, sizeof buffer, offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::fromErrno("read", path, errno);
    }
    if (n == 0) break;
    out.append(buffer, static_cast<size_t>(n));
    offset += n;
  }
  return out;
}

}  // namespace

Result<Dir> Dir::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Error::fromErrno("open", path, errno);
  return Dir(UniqueFd(fd), path);
}

std::string Dir::childPath(std::string_view name) const {
  std::string out = path_;
  if (out.empty() || out.back() != '/') out += '/';
  out += name;
  return out;
}

Result<Dir> Dir::openChild(std::string_view name) const {
  std::string relative(name);
  int fd = ::openat(fd_.get(), relative.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Error::fromErrno("open", childPath(name), errno);
  return Dir(UniqueFd(fd), childPath(name));
}

Result<void> Dir::makeChild(std::string_view name, bool allowExisting) const {
  std::string relative(name);
  if (::mkdirat(fd_.get(), relative.c_str(), 0755) != 0) {
    if (errno == EEXIST && allowExisting) return ok();
    return Error::fromErrno("mkdir", childPath(name), errno);
  }
  return ok();
}

Result<void> Dir::removeChild(std::string_view name) const {
  std::string relative(name);
  if (::unlinkat(fd_.get(), relative.c_str(), AT_REMOVEDIR) != 0)
    return Error::fromErrno("rmdir", childPath(name), errno);
  return ok();
}

bool Dir::exists(std::string_view name) const {
  std::string relative(name);
  struct stat st {};
  return ::fstatat(fd_.get(), relative.c_str(), &st, 0) == 0;
}

Result<UniqueFd> Dir::openFile(std::string_view name, int flags, mode_t mode) const {
  std::string relative(name);
  int fd = ::openat(fd_.get(), relative.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) return Error::fromErrno("open", childPath(name), errno);
  return UniqueFd(fd);
}

Result<std::string> Dir::readFile(std::string_view name) const {
  auto fd = openFile(name, O_RDONLY);
  if (!fd) return fd.error();
  return readAllFrom(fd->get(), childPath(name));
}

Result<void> Dir::writeFile(std::string_view name, std::string_view value) const {
  auto fd = openFile(name, O_WRONLY);
  if (!fd) return fd.error();
  for (;;) {
    ssize_t n = ::write(fd->get(), value.data(), value.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::fromErrno("write", childPath(name), errno, std::string(value));
    if (static_cast<size_t>(n) != value.size())
      return Error::invalid("write", childPath(name), std::string(value), "short write");
    return ok();
  }
}

Result<std::vector<std::string>> Dir::list() const {
  int copy = ::openat(fd_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (copy < 0) return Error::fromErrno("open", path_, errno);
  DIR* dir = ::fdopendir(copy);
  if (dir == nullptr) {
    int saved = errno;
    ::close(copy);
    return Error::fromErrno("opendir", path_, saved);
  }
  std::vector<std::string> names;
  errno = 0;
  while (dirent* entry = ::readdir(dir)) {
    std::string_view name(entry->d_name);
    if (name != "." && name != "..") names.emplace_back(name);
  }
  int saved = errno;
  ::closedir(dir);
  if (saved != 0) return Error::fromErrno("readdir", path_, saved);
  return names;
}

Result<std::string> readFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error::fromErrno("open", path, errno);
  UniqueFd owner(fd);
  return readAllFrom(fd, path);
}

Result<void> writeAll(int fd, std::string_view bytes, const std::string& pathForErrors) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::fromErrno("write", pathForErrors, errno);
    }
    done += static_cast<size_t>(n);
  }
  return ok();
}

Result<std::string> preadAll(int fd, const std::string& pathForErrors) {
  return readAllFrom(fd, pathForErrors);
}

std::string_view trim(std::string_view text) {
  const char* ws = " \t\r\n";
  auto first = text.find_first_not_of(ws);
  if (first == std::string_view::npos) return {};
  auto last = text.find_last_not_of(ws);
  return text.substr(first, last - first + 1);
}

}  // namespace Atoll
