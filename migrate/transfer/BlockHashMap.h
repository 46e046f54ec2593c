#pragma once
// Per-block content hashes of an image, as one side last saw them. The sender
// compares a block's current hash with the one the receiver holds to decide
// whether to send it; both ends fold their maps into one image hash to verify
// the transfer.
#include <cstdint>
#include <span>
#include <vector>

namespace Atoll::transfer {

class BlockHashMap {
 public:
  // 0 marks a block the holder does not have; a block of all zeros is kept as
  // kZeroBlockHash so holes need neither reading nor hashing.
  static constexpr uint64_t kNotHeld = 0;
  static constexpr uint64_t kZeroBlockHash = 1;

  BlockHashMap() = default;
  BlockHashMap(uint64_t imageSize, uint32_t blockSize);

  uint64_t imageSize() const { return imageSize_; }
  uint32_t blockSize() const { return blockSize_; }
  uint64_t blockCount() const { return hashes_.size(); }
  uint32_t blockLength(uint64_t index) const;
  uint64_t blockOffset(uint64_t index) const { return index * blockSize_; }

  uint64_t get(uint64_t index) const { return hashes_[index]; }
  void set(uint64_t index, uint64_t hash) { hashes_[index] = hash; }
  const std::vector<uint64_t>& hashes() const { return hashes_; }
  // Replaces every entry (e.g. with what a resuming receiver holds); a
  // vector of the wrong size leaves the map unchanged and returns false.
  bool assign(const std::vector<uint64_t>& hashes);

  // Hash of one block's content as stored in a map: the frame checksum
  // (blockChecksum) for data, kZeroBlockHash for all zeros. Raw values that
  // collide with the two markers are moved out of their way.
  static uint64_t hashBlock(uint64_t index, std::span<const uint8_t> data);
  static uint64_t fromChecksum(uint64_t checksum);
  static bool isAllZero(std::span<const uint8_t> data);

  // XXH3-64 over the little-endian block hashes, seeded with the image size:
  // equal maps of equal-sized images give equal hashes.
  uint64_t imageHash() const;
  // Blocks whose hash is kNotHeld.
  uint64_t missingBlocks() const;

 private:
  uint64_t imageSize_ = 0;
  uint32_t blockSize_ = 0;
  std::vector<uint64_t> hashes_;
};

}  // namespace Atoll::transfer
