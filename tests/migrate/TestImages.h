#pragma once
// Test images: sparse files with random extents, known block changes, and
// byte-for-byte comparison.
#include <cstdint>
#include <string>
#include <vector>

namespace Atoll::transfer::testing {

// A temporary directory removed (with its contents) at destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A sparse file of `size` bytes with `extents` random-data extents of
// `extentSize` bytes at seeded random offsets (block-aligned).
void makeSparseRandomImage(const std::string& path, uint64_t size, int extents, uint64_t extentSize,
                           uint64_t seed);
// Overwrites `count` distinct blocks (of `blockSize`) with new random data;
// returns their indexes.
std::vector<uint64_t> changeBlocks(const std::string& path, uint64_t blockSize, uint64_t count,
                                   uint64_t seed);
bool filesEqual(const std::string& a, const std::string& b);
uint64_t fileHash(const std::string& path);
bool exists(const std::string& path);

}  // namespace Atoll::transfer::testing
