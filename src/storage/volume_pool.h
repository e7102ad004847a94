// VolumePool: the volume manager. A pool aggregates physical volumes (files or
// block devices) into extents and carves logical volumes from them, linear
// (concatenated extents, may span PVs) or striped (chunks rotated over legs on
// distinct PVs). Metadata lives on every PV (see volume_metadata.h).
// LogicalVolume is the BlockDevice a VM gets; it splits each request into
// per-PV requests. The pool must outlive the volumes opened from it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/event_loop.h"
#include "base/result.h"
#include "storage/block_device.h"
#include "storage/raw_image.h"
#include "storage/volume_metadata.h"

namespace strata::storage::volume {

struct VolumeLayout {
  Layout layout = Layout::Linear;
  uint32_t stripes = 1;
  uint64_t stripeSize = 64 * 1024;
};

class VolumePool {
 public:
  // Labels the PVs as a new pool; refuses PVs that already carry pool metadata.
  static Result<std::unique_ptr<VolumePool>> create(const std::string& name, const std::vector<std::string>& pvPaths,
                                                    uint64_t extentSize, EventLoop& loop);
  // Opens a pool from all its PVs, in any order, using the newest valid metadata copy.
  static Result<std::unique_ptr<VolumePool>> open(const std::vector<std::string>& pvPaths, EventLoop& loop);

  const PoolMetadata& metadata() const { return meta_; }
  uint64_t freeExtents() const;

  Result<void> createVolume(const std::string& name, uint64_t sizeBytes, const VolumeLayout& layout);
  Result<void> removeVolume(const std::string& name);
  Result<std::unique_ptr<BlockDevice>> openVolume(const std::string& name);

 private:
  VolumePool(EventLoop& loop) : loop_(loop) {}
  Result<void> commit();
  std::vector<std::vector<bool>> usedExtents() const;

  EventLoop& loop_;
  PoolMetadata meta_;
  std::vector<std::unique_ptr<RawImage>> pvs_;  // indexed like meta_.pvs
  std::vector<std::string> paths_;
};

class LogicalVolume final : public BlockDevice {
 public:
  LogicalVolume(LogicalVolumeInfo info, std::vector<RawImage*> pvs, uint64_t extentSize, EventLoop& loop);

  uint64_t sizeBytes() const override { return info_.sizeBytes; }
  bool readOnly() const override { return false; }
  std::string serial() const override;

  void readv(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) override;
  void writev(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) override;
  void flush(IoCompletion done) override;
  void discard(uint64_t offset, uint64_t length, IoCompletion done) override;
  void writeZeroes(uint64_t offset, uint64_t length, IoCompletion done) override;

  struct Piece {
    uint32_t pvIndex;
    uint64_t pvOffset;
    uint64_t volumeOffset;
    uint64_t length;
  };
  // Where [offset, offset+length) of the volume lives on the PVs.
  std::vector<Piece> map(uint64_t offset, uint64_t length) const;

 private:
  enum class Op { Read, Write, Discard, Zero };
  void run(Op op, uint64_t offset, uint64_t length, const std::vector<iovec>& buffers, IoCompletion done);

  LogicalVolumeInfo info_;
  std::vector<RawImage*> pvs_;
  uint64_t extentSize_;
  EventLoop& loop_;
};

}  // namespace strata::storage::volume
