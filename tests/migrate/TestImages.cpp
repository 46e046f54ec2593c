#include "TestImages.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>
#include <set>
#include <stdexcept>

namespace Atoll::transfer::testing {

TempDir::TempDir() {
  char pattern[] = "/tmp/atoll-migrate-XXXXXX";
  if (::mkdtemp(pattern) == nullptr) throw std::runtime_error("mkdtemp");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

namespace {
void fillRandom(std::vector<uint8_t>& buffer, std::mt19937_64& random) {
  for (size_t i = 0; i + 8 <= buffer.size(); i += 8) {
    uint64_t v = random();
    std::memcpy(buffer.data() + i, &v, 8);
  }
}
void writeAt(int fd, const std::vector<uint8_t>& buffer, uint64_t offset, uint64_t length) {
  if (::pwrite(fd, buffer.data(), length, static_cast<off_t>(offset)) !=
      static_cast<ssize_t>(length)) {
    throw std::runtime_error("pwrite");
  }
}
}  // namespace

void makeSparseRandomImage(const std::string& path, uint64_t size, int extents, uint64_t extentSize,
                           uint64_t seed) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("open " + path);
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) throw std::runtime_error("ftruncate");
  std::mt19937_64 random(seed);
  std::vector<uint8_t> buffer(extentSize);
  uint64_t slots = size / extentSize;
  for (int i = 0; i < extents; ++i) {
    fillRandom(buffer, random);
    uint64_t slot = random() % slots;
    writeAt(fd, buffer, slot * extentSize, extentSize);
  }
  ::close(fd);
}

std::vector<uint64_t> changeBlocks(const std::string& path, uint64_t blockSize, uint64_t count,
                                   uint64_t seed) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  struct stat st {};
  ::fstat(fd, &st);
  uint64_t blocks = static_cast<uint64_t>(st.st_size) / blockSize;
  std::mt19937_64 random(seed);
  std::set<uint64_t> chosen;
  while (chosen.size() < count) chosen.insert(random() % blocks);
  std::vector<uint8_t> buffer(blockSize);
  for (uint64_t index : chosen) {
    fillRandom(buffer, random);
    writeAt(fd, buffer, index * blockSize, blockSize);
  }
  ::close(fd);
  return {chosen.begin(), chosen.end()};
}

bool filesEqual(const std::string& a, const std::string& b) {
  int fa = ::open(a.c_str(), O_RDONLY | O_CLOEXEC), fb = ::open(b.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat sa {
  }, sb{};
  bool equal = fa >= 0 && fb >= 0 && ::fstat(fa, &sa) == 0 && ::fstat(fb, &sb) == 0 &&
               sa.st_size == sb.st_size;
  constexpr off_t kChunk = 4 << 20;
  std::vector<uint8_t> ba(kChunk), bb(kChunk);
  // Byte for byte, except ranges that are holes in both files (zeros on
  // both sides by definition).
  auto holeUntil = [](int fd, off_t at, off_t end) {
    off_t data = ::lseek(fd, at, SEEK_DATA);
    return (data < 0 && errno == ENXIO) || data >= end;
  };
  for (off_t at = 0; equal && at < sa.st_size; at += kChunk) {
    off_t end = std::min<off_t>(at + kChunk, sa.st_size);
    if (holeUntil(fa, at, end) && holeUntil(fb, at, end)) continue;
    size_t length = static_cast<size_t>(end - at);
    equal = ::pread(fa, ba.data(), length, at) == static_cast<ssize_t>(length) &&
            ::pread(fb, bb.data(), length, at) == static_cast<ssize_t>(length) &&
            std::memcmp(ba.data(), bb.data(), length) == 0;
  }
  if (fa >= 0) ::close(fa);
  if (fb >= 0) ::close(fb);
  return equal;
}

uint64_t fileHash(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  XXH3_state_t* state = XXH3_createState();
  XXH3_64bits_reset(state);
  std::vector<uint8_t> buffer(4 << 20);
  ssize_t n;
  while ((n = ::read(fd, buffer.data(), buffer.size())) > 0) {
    XXH3_64bits_update(state, buffer.data(), static_cast<size_t>(n));
  }
  uint64_t h = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  ::close(fd);
  return h;
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

}  // namespace Atoll::transfer::testing
