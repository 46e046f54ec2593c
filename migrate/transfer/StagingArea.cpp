#include "migrate/transfer/StagingArea.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <xxhash.h>

#include "util/Fs.h"

namespace Atoll::transfer {

namespace {

constexpr uint32_t kProgressMagic = 0x504c5441;  // "ATLP"
constexpr uint32_t kProgressVersion = 1;
constexpr const char* kTempSuffix = ".atoll-partial";
constexpr const char* kProgressSuffix = ".atoll-progress";

void put(std::vector<uint8_t>& out, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
uint64_t get(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

std::string join(const std::string& dir, const std::string& name) {
  return dir.empty() || dir.back() == '/' ? dir + name : dir + "/" + name;
}

// Opens the temporary file `name` in `directory` (creating it when absent;
// `created` says so) and takes an exclusive lock on it, which the session
// holds until it ends. A file locked by another session is refused. A
// session that commits renames its file to the final name, so a file locked
// only after that is no longer the temporary one: then it is opened again.
Result<UniqueFd> openLockedTemporary(int directory, const std::string& name,
                                     const std::string& path, bool& created) {
  for (int attempt = 0; attempt < 8; ++attempt) {
    created = false;
    int fd = ::openat(directory, name.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT) {
      fd = ::openat(directory, name.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_CREAT | O_EXCL,
                    0600);
      if (fd < 0 && errno == EEXIST) continue;
      created = fd >= 0;
    }
    if (fd < 0) return Error::fromErrno("open", path, errno);
    UniqueFd file(fd);
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int e = errno;
      Error error = Error::fromErrno("lock", path, e);
      if (e == EWOULDBLOCK)
        error.detail =
            "refused: another session is receiving this image (one whose sender fell silent "
            "ends after the idle timeout; send again then to resume)";
      return error;
    }
    struct stat opened {};
    struct stat named {};
    if (::fstat(fd, &opened) != 0) return Error::fromErrno("fstat", path, errno);
    if (::fstatat(directory, name.c_str(), &named, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno != ENOENT) return Error::fromErrno("stat", path, errno);
      continue;
    }
    if (named.st_dev == opened.st_dev && named.st_ino == opened.st_ino) return file;
  }
  return Error::invalid("open", path, "",
                        "the temporary file kept being replaced while opening it");
}

}  // namespace

std::vector<uint8_t> encodeProgress(const ProgressRecord& record) {
  std::vector<uint8_t> out;
  put(out, kProgressMagic, 4);
  put(out, kProgressVersion, 4);
  put(out, record.transferId, 8);
  put(out, record.imageSize, 8);
  put(out, record.blockSize, 4);
  put(out, record.heldHashes.size(), 8);
  for (uint64_t h : record.heldHashes) put(out, h, 8);
  put(out, XXH3_64bits(out.data(), out.size()), 8);
  return out;
}

Result<ProgressRecord> decodeProgress(const std::vector<uint8_t>& bytes, const std::string& path) {
  constexpr size_t kFixed = 4 + 4 + 8 + 8 + 4 + 8;
  if (bytes.size() < kFixed + 8) {
    return Error::invalid("parse", path, std::to_string(bytes.size()), "progress record too short");
  }
  const uint8_t* p = bytes.data();
  if (get(p + bytes.size() - 8, 8) != XXH3_64bits(p, bytes.size() - 8)) {
    return Error::invalid("parse", path, "", "progress record checksum mismatch");
  }
  if (get(p, 4) != kProgressMagic || get(p + 4, 4) != kProgressVersion) {
    return Error::invalid("parse", path, std::to_string(get(p + 4, 4)),
                          "not a version 1 progress record");
  }
  ProgressRecord record;
  record.transferId = get(p + 8, 8);
  record.imageSize = get(p + 16, 8);
  record.blockSize = static_cast<uint32_t>(get(p + 24, 4));
  uint64_t count = get(p + 28, 8);
  if (count != (bytes.size() - kFixed - 8) / 8 || (bytes.size() - kFixed - 8) % 8 != 0) {
    return Error::invalid("parse", path, std::to_string(count),
                          "progress record block count does not match its length");
  }
  record.heldHashes.resize(count);
  for (uint64_t i = 0; i < count; ++i) record.heldHashes[i] = get(p + kFixed + 8 * i, 8);
  return record;
}

Result<void> checkImageName(const std::string& name) {
  if (name.empty()) return Error::invalid("check name", "", name, "image name is empty");
  if (name.front() == '/') {
    return Error::invalid("check name", "", name, "absolute paths are not accepted");
  }
  size_t at = 0;
  while (at <= name.size()) {
    size_t end = name.find('/', at);
    if (end == std::string::npos) end = name.size();
    std::string part = name.substr(at, end - at);
    if (part.empty()) return Error::invalid("check name", "", name, "empty path component");
    if (part == "." || part == "..") {
      return Error::invalid("check name", "", name, "'.' and '..' are not accepted");
    }
    if (part.front() == '.') {
      return Error::invalid("check name", "", name, "hidden names are reserved for transfer state");
    }
    at = end + 1;
  }
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) {
      return Error::invalid("check name", "", name, "control characters are not accepted");
    }
  }
  return ok();
}

Result<void> checkRemoteName(const std::string& name) {
  if (!name.empty() && name.front() == '/') {
    for (unsigned char c : name) {
      if (c < 0x20 || c == 0x7f) {
        return Error::invalid("check name", "", name, "control characters are not accepted");
      }
    }
    return ok();  // a device path: the receiver's allow-list decides
  }
  return checkImageName(name);
}

Result<StagingArea> StagingArea::open(const std::string& directory,
                                      std::vector<std::string> allowedDevices) {
  for (const std::string& device : allowedDevices) {
    if (device.empty() || device.front() != '/') {
      return Error::invalid("configure", "allowed devices", device,
                            "a device on the allow-list must be an absolute path");
    }
  }
  int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Error::fromErrno("open", directory, errno);
  return StagingArea(UniqueFd(fd), directory, std::move(allowedDevices));
}

void StagingArea::loadProgress(StagedImage& image, const Hello& hello,
                               const std::string& recordPath) const {
  int recordFd = ::openat(image.directory_.get(), image.progressName_.c_str(),
                          O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (recordFd < 0) return;
  UniqueFd record(recordFd);
  std::vector<uint8_t> bytes;
  uint8_t chunk[65536];
  ssize_t n;
  while ((n = ::read(record.get(), chunk, sizeof chunk)) > 0) {
    bytes.insert(bytes.end(), chunk, chunk + n);
  }
  auto decoded = decodeProgress(bytes, recordPath);
  if (decoded && decoded->transferId == hello.transferId && decoded->imageSize == hello.imageSize &&
      decoded->blockSize == hello.blockSize && image.held_.assign(decoded->heldHashes)) {
    image.resumed_ = true;
  }
}

Result<StagedImage> StagingArea::prepareDevice(const Hello& hello) const {
  bool allowed = false;
  for (const std::string& device : allowedDevices_) allowed = allowed || device == hello.name;
  if (!allowed) {
    return Error::invalid("stage", hello.name, "",
                          "refused: absolute paths are accepted only for block devices on the "
                          "receiver's allow-list (--allow-device)");
  }
  StagedImage image;
  image.device_ = true;
  image.finalPath_ = hello.name;
  image.tempPath_ = hello.name;
  image.transferId_ = hello.transferId;
  // The record lives in the staging directory under a name derived from the
  // device path, so the device itself carries nothing but the image.
  char id[17];
  std::snprintf(id, sizeof id, "%016llx",
                static_cast<unsigned long long>(XXH3_64bits(hello.name.data(), hello.name.size())));
  image.progressName_ = std::string(".device-") + id + kProgressSuffix;
  int dir = ::fcntl(fd_.get(), F_DUPFD_CLOEXEC, 0);
  if (dir < 0) return Error::fromErrno("dup", path_, errno);
  image.directory_ = UniqueFd(dir);
  // O_NOFOLLOW: the allowed path itself must be the device node, so a
  // symlink swapped in later cannot redirect the writes.
  int fd = ::open(hello.name.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    Error error = Error::fromErrno("open", hello.name, errno);
    if (errno == ELOOP) error.detail = "refused: an allowed device path must not be a symlink";
    return error;
  }
  image.file_ = UniqueFd(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Error::fromErrno("fstat", hello.name, errno);
  if (!S_ISBLK(st.st_mode)) {
    return Error::invalid("stage", hello.name, "",
                          "refused: on the allow-list but not a block device");
  }
  uint64_t size = 0;
  if (::ioctl(fd, BLKGETSIZE64, &size) != 0) {
    return Error::fromErrno("BLKGETSIZE64", hello.name, errno);
  }
  if (size < hello.imageSize) {
    return Error::invalid(
        "stage", hello.name, std::to_string(hello.imageSize),
        "refused: the image is larger than the device (" + std::to_string(size) + " bytes)");
  }
  image.held_ = BlockHashMap(hello.imageSize, hello.blockSize);
  loadProgress(image, hello, join(path_, image.progressName_));
  if (!image.resumed_) {
    if (auto s = image.saveProgress(); !s) return s.error();
  }
  return image;
}

Result<UniqueFd> StagingArea::openBeneath(const std::string& relative, int flags,
                                          mode_t mode) const {
  open_how how{};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC | O_NOFOLLOW);
  how.mode = (flags & O_CREAT) ? mode : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  long fd = ::syscall(SYS_openat2, fd_.get(), relative.c_str(), &how, sizeof how);
  if (fd < 0 && errno == ENOSYS) {
    // Kernels before 5.6: only single components, each refusing symlinks.
    if (relative.find('/') != std::string::npos) {
      return Error::fromErrno("open", join(path_, relative), ENOSYS, "subdirectories need openat2");
    }
    fd = ::openat(fd_.get(), relative.c_str(), flags | O_CLOEXEC | O_NOFOLLOW, mode);
  }
  if (fd < 0) {
    int e = errno;
    Error error = Error::fromErrno("open", join(path_, relative), e);
    if (e == ELOOP || e == EXDEV)
      error.detail =
          "refused: the path leaves the staging directory "
          "or goes through a symlink";
    return error;
  }
  return UniqueFd(static_cast<int>(fd));
}

Result<StagedImage> StagingArea::prepare(const Hello& hello) const {
  if (!hello.name.empty() && hello.name.front() == '/' && !allowedDevices_.empty()) {
    return prepareDevice(hello);
  }
  if (auto c = checkImageName(hello.name); !c) return c.error();
  StagedImage image;
  size_t slash = hello.name.rfind('/');
  std::string parent = slash == std::string::npos ? "." : hello.name.substr(0, slash);
  image.baseName_ = slash == std::string::npos ? hello.name : hello.name.substr(slash + 1);
  image.tempName_ = "." + image.baseName_ + kTempSuffix;
  image.progressName_ = "." + image.baseName_ + kProgressSuffix;
  std::string parentPath = parent == "." ? path_ : join(path_, parent);
  image.finalPath_ = join(parentPath, image.baseName_);
  image.tempPath_ = join(parentPath, image.tempName_);
  image.transferId_ = hello.transferId;

  auto directory = openBeneath(parent, O_RDONLY | O_DIRECTORY, 0);
  if (!directory) return directory.error();
  image.directory_ = std::move(*directory);

  // Whatever sits under the final name now must be a regular file we may
  // replace: never a device, a directory or a symlink.
  struct stat existing {};
  if (::fstatat(image.directory_.get(), image.baseName_.c_str(), &existing, AT_SYMLINK_NOFOLLOW) ==
          0 &&
      !S_ISREG(existing.st_mode)) {
    return Error::invalid("stage", image.finalPath_, "",
                          "refused: the target exists and is not a regular file "
                          "(devices, symlinks and directories are not overwritten)");
  }

  // The temporary file is locked before anything in it or in its progress
  // record is trusted or truncated: a second session for the same name would
  // otherwise share the file with the first one.
  bool created = false;
  auto file =
      openLockedTemporary(image.directory_.get(), image.tempName_, image.tempPath_, created);
  if (!file) return file.error();
  image.file_ = std::move(*file);
  int fd = image.file_.get();
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Error::fromErrno("fstat", image.tempPath_, errno);
  if (!S_ISREG(st.st_mode)) {
    return Error::invalid("stage", image.tempPath_, "", "temporary file is not a regular file");
  }

  // Resume when a matching progress record and temporary file exist.
  image.held_ = BlockHashMap(hello.imageSize, hello.blockSize);
  if (!created) loadProgress(image, hello, join(parentPath, image.progressName_));
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (!image.resumed_ && size != 0) {
    // What an earlier transfer left is not this one's data.
    if (::ftruncate(fd, 0) != 0) return Error::fromErrno("ftruncate", image.tempPath_, errno, "0");
    size = 0;
  }
  if (size != hello.imageSize && ::ftruncate(fd, static_cast<off_t>(hello.imageSize)) != 0) {
    return Error::fromErrno("ftruncate", image.tempPath_, errno, std::to_string(hello.imageSize));
  }
  if (!image.resumed_) {
    if (auto s = image.saveProgress(); !s) return s.error();
  }
  return image;
}

Result<void> StagedImage::saveProgress() {
  if (::fdatasync(file_.get()) != 0) return Error::fromErrno("fdatasync", tempPath_, errno);
  ProgressRecord record{transferId_, held_.imageSize(), held_.blockSize(), held_.hashes()};
  std::string scratch = progressName_ + ".new";
  int fd = ::openat(directory_.get(), scratch.c_str(),
                    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Error::fromErrno("open", scratch, errno);
  UniqueFd out(fd);
  const auto encoded = encodeProgress(record);
  if (auto w = writeAll(
          fd, std::string_view(reinterpret_cast<const char*>(encoded.data()), encoded.size()),
          scratch);
      !w)
    return w.error();
  if (::fdatasync(fd) != 0) return Error::fromErrno("fdatasync", scratch, errno);
  if (::renameat(directory_.get(), scratch.c_str(), directory_.get(), progressName_.c_str()) != 0) {
    return Error::fromErrno("rename", progressName_, errno);
  }
  // The rename (and, after prepare(), the temporary file's own entry) is
  // durable only once the directory is: otherwise a crash can bring back an
  // older record and the resume resends what this round already holds.
  if (::fsync(directory_.get()) != 0) return Error::fromErrno("fsync", progressName_, errno);
  return ok();
}

Result<void> StagedImage::commit() {
  if (::fsync(file_.get()) != 0) return Error::fromErrno("fsync", tempPath_, errno);
  if (device_) {
    // Written in place: verified and fsynced is committed.
    if (::unlinkat(directory_.get(), progressName_.c_str(), 0) != 0 && errno != ENOENT) {
      return Error::fromErrno("unlink", progressName_, errno);
    }
    return ok();
  }
  if (::renameat(directory_.get(), tempName_.c_str(), directory_.get(), baseName_.c_str()) != 0) {
    return Error::fromErrno("rename", tempPath_, errno, finalPath_);
  }
  if (::fsync(directory_.get()) != 0) return Error::fromErrno("fsync", finalPath_, errno);
  if (::unlinkat(directory_.get(), progressName_.c_str(), 0) != 0 && errno != ENOENT) {
    return Error::fromErrno("unlink", progressName_, errno);
  }
  return ok();
}

}  // namespace Atoll::transfer
