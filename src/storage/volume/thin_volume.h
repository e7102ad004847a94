// ThinVolume: the BlockDevice of one thin volume, snapshot or clone; a thin
// window onto its ThinPoolEngine, which does the mapping and allocation.
#pragma once

#include <memory>

#include "storage/block_device.h"
#include "storage/volume/thin_pool.h"

namespace strata::storage::volume {

class ThinVolume final : public BlockDevice {
 public:
  ThinVolume(std::shared_ptr<ThinPoolEngine> engine, uint32_t device, uint64_t sizeBytes, bool readOnly,
             EventLoop& loop);

  uint64_t sizeBytes() const override { return size_; }
  bool readOnly() const override { return readOnly_; }
  std::string serial() const override;

  void readv(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) override;
  void writev(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) override;
  void flush(IoCompletion done) override;
  void discard(uint64_t offset, uint64_t length, IoCompletion done) override;
  void writeZeroes(uint64_t offset, uint64_t length, IoCompletion done) override;

 private:
  bool rangeOk(uint64_t offset, uint64_t length, bool write, IoCompletion& done);
  std::shared_ptr<ThinPoolEngine> engine_;
  uint32_t device_;
  uint64_t size_;
  bool readOnly_;
  EventLoop& loop_;
};

}  // namespace strata::storage::volume
