#pragma once
// The receiver's staging directory. Images land only inside it: names are
// checked lexically (no absolute paths, no "..", no empty or hidden parts) and
// then opened with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), so neither
// a crafted name nor a symlink planted in the directory leads outside. Data
// goes to a temporary name next to the final one and is renamed over it only
// after the image was verified and fsynced; a progress record beside it lets
// an interrupted transfer resume.
//
// Block devices are the one exception to "only inside the directory": a peer
// may name a device by its absolute path when that exact path is on the
// receiver's allow-list and is a block device itself (not a symlink to one).
// A device is written in place (it cannot be renamed), so its progress record
// stays in the staging directory, named after the device path, and "commit"
// means fsynced and verified.
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
// What a sender may ask for: a staging name, or an absolute device path that
// the receiver checks against its allow-list.
Result<void> checkRemoteName(const std::string& name);

class StagedImage {
 public:
  int fd() const { return file_.get(); }
  const std::string& finalPath() const { return finalPath_; }
  const std::string& tempPath() const { return tempPath_; }
  BlockHashMap& held() { return held_; }
  bool resumed() const { return resumed_; }
  bool isDevice() const { return device_; }

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
  bool device_ = false;
};

class StagingArea {
 public:
  // allowedDevices: absolute paths of block devices peers may write to.
  static Result<StagingArea> open(const std::string& directory,
                                  std::vector<std::string> allowedDevices = {});
  const std::string& path() const { return path_; }
  const std::vector<std::string>& allowedDevices() const { return allowedDevices_; }
  // Opens (or resumes) the temporary file for an announced image. The image
  // holds a lock on it until destroyed; another session for the same name
  // meanwhile is refused.
  Result<StagedImage> prepare(const Hello& hello) const;

 private:
  StagingArea(UniqueFd fd, std::string path, std::vector<std::string> allowedDevices)
      : fd_(std::move(fd)), path_(std::move(path)), allowedDevices_(std::move(allowedDevices)) {}
  Result<UniqueFd> openBeneath(const std::string& relative, int flags, mode_t mode) const;
  Result<StagedImage> prepareDevice(const Hello& hello) const;
  // Reads the progress record and marks the image resumed when it matches.
  void loadProgress(StagedImage& image, const Hello& hello, const std::string& recordPath) const;

  UniqueFd fd_;
  std::string path_;
  std::vector<std::string> allowedDevices_;
};

}  // namespace Atoll::transfer
