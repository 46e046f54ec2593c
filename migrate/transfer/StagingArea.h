#pragma once
// The receiver's staging directory. Images land only inside it: names are
// checked lexically (no absolute paths, no "..", no empty or hidden parts) and
// then opened with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), so neither
// a crafted name nor a symlink planted in the directory leads outside. Data
// goes to a temporary name next to the final one and is renamed over it only
// after the image was verified and fsynced; a progress record beside it lets
// an interrupted transfer resume.
#include <cstdint>
#include <string>
#include <vector>

#include "migrate/transfer/BlockHashMap.h"
#include "migrate/transfer/WireProtocol.h"
#include "util/Result.h"
#include "util/UniqueFd.h"

namespace Atoll::transfer {

// The durable state of an unfinished transfer, kept as ".NAME.atoll-progress".
struct ProgressRecord {
  uint64_t transferId = 0;
  uint64_t imageSize = 0;
  uint32_t blockSize = 0;
  std::vector<uint64_t> heldHashes;  // BlockHashMap entries written and fsynced
};
std::vector<uint8_t> encodeProgress(const ProgressRecord& record);
Result<ProgressRecord> decodeProgress(const std::vector<uint8_t>& bytes, const std::string& path);

// Lexical check of a name sent by a peer.
Result<void> checkImageName(const std::string& name);

class StagedImage {
 public:
  int fd() const { return file_.get(); }
  const std::string& finalPath() const { return finalPath_; }
  const std::string& tempPath() const { return tempPath_; }
  BlockHashMap& held() { return held_; }
  bool resumed() const { return resumed_; }

  // fdatasync the data, then replace the progress record atomically.
  Result<void> saveProgress();
  // fsync the image, rename it to its final name, fsync the directory and
  // drop the progress record.
  Result<void> commit();

 private:
  friend class StagingArea;
  UniqueFd directory_;
  UniqueFd file_;
  std::string baseName_;
  std::string tempName_;
  std::string progressName_;
  std::string finalPath_;
  std::string tempPath_;
  uint64_t transferId_ = 0;
  BlockHashMap held_;
  bool resumed_ = false;
};

class StagingArea {
 public:
  static Result<StagingArea> open(const std::string& directory);
  const std::string& path() const { return path_; }
  // Opens (or resumes) the temporary file for an announced image.
  Result<StagedImage> prepare(const Hello& hello) const;

 private:
  StagingArea(UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  Result<UniqueFd> openBeneath(const std::string& relative, int flags, mode_t mode) const;

  UniqueFd fd_;
  std::string path_;
};

}  // namespace Atoll::transfer
