#include "migrate/transfer/BlockHashMap.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>

#include "migrate/transfer/WireProtocol.h"

namespace Atoll::transfer {

BlockHashMap::BlockHashMap(uint64_t imageSize, uint32_t blockSize)
    : imageSize_(imageSize),
      blockSize_(blockSize),
      hashes_((imageSize + blockSize - 1) / blockSize, kNotHeld) {}

uint32_t BlockHashMap::blockLength(uint64_t index) const {
  uint64_t offset = blockOffset(index);
  return static_cast<uint32_t>(std::min<uint64_t>(blockSize_, imageSize_ - offset));
}

bool BlockHashMap::assign(const std::vector<uint64_t>& hashes) {
  if (hashes.size() != hashes_.size()) return false;
  hashes_ = hashes;
  return true;
}

uint64_t BlockHashMap::fromChecksum(uint64_t checksum) {
  // Keep the two marker values free: a real hash of 0 or 1 becomes 2 or 3.
  return checksum < 2 ? checksum + 2 : checksum;
}

bool BlockHashMap::isAllZero(std::span<const uint8_t> data) {
  // Word-wise scan; data blocks usually fail on the first word.
  size_t i = 0;
  for (; i + 8 <= data.size(); i += 8) {
    uint64_t word;
    std::memcpy(&word, data.data() + i, 8);
    if (word != 0) return false;
  }
  for (; i < data.size(); ++i) {
    if (data[i] != 0) return false;
  }
  return true;
}

uint64_t BlockHashMap::hashBlock(uint64_t index, std::span<const uint8_t> data) {
  if (isAllZero(data)) return kZeroBlockHash;
  return fromChecksum(blockChecksum(index, data));
}

uint64_t BlockHashMap::imageHash() const {
  XXH3_state_t* state = XXH3_createState();
  XXH3_64bits_reset_withSeed(state, imageSize_);
  uint8_t le[8];
  for (uint64_t h : hashes_) {
    for (int i = 0; i < 8; ++i) le[i] = static_cast<uint8_t>(h >> (8 * i));
    XXH3_64bits_update(state, le, sizeof le);
  }
  uint64_t out = XXH3_64bits_digest(state);
  XXH3_freeState(state);
  return out;
}

uint64_t BlockHashMap::missingBlocks() const {
  return static_cast<uint64_t>(std::count(hashes_.begin(), hashes_.end(), kNotHeld));
}

}  // namespace Atoll::transfer
