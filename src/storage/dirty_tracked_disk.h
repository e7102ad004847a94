// DirtyTrackedDisk: a BlockDevice that passes every request to the disk it
// wraps and, while tracking is on, marks the 4 KiB blocks each completed write,
// discard or write-zeroes touched. Live migration without shared storage
// mirrors a disk by copying it once and then, round by round, what was marked.
#pragma once

#include <memory>

#include "base/dirty_bitmap.h"
#include "storage/disk_image.h"

namespace strata::storage {

class DirtyTrackedDisk : public BlockDevice {
 public:
  static constexpr uint64_t kBlockBytes = uint64_t{1} << DirtyBitmap::kPageShift;

  explicit DirtyTrackedDisk(std::unique_ptr<BlockDevice> disk);

  uint64_t sizeBytes() const override { return disk_->sizeBytes(); }
  bool readOnly() const override { return disk_->readOnly(); }
  std::string serial() const override { return disk_->serial(); }
  void readv(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) override;
  void writev(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) override;
  void flush(IoCompletion done) override;
  void discard(uint64_t offset, uint64_t length, IoCompletion done) override;
  void writeZeroes(uint64_t offset, uint64_t length, IoCompletion done) override;

  // Marks are taken from any thread; set on the loop thread when a change completes
  // (whatever its result: a failed write may still have changed some blocks).
  DirtyBitmap& dirtyBlocks() { return dirty_; }
  DiskImage* image() override { return disk_->image(); }
  BlockDevice& tracked() { return *disk_; }

 private:
  IoCompletion marking(uint64_t offset, uint64_t length, IoCompletion done);
  std::unique_ptr<BlockDevice> disk_;
  DirtyBitmap dirty_;
};

}  // namespace strata::storage
