// ParityVolume: the BlockDevice of a RAID 5 volume. Rows of (legs-1) data
// chunks plus one parity chunk, parity rotating left-symmetric like md's
// default. Writes lock their row and recompute parity over the 4 KiB-aligned
// column slice they touch (reading what they do not overwrite); with one leg
// missing, its contents are reconstructed from the others, so the volume
// stays readable and writable degraded.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>

#include "storage/block_device.h"
#include "storage/volume/leg_io.h"
#include "storage/volume/pool.h"

namespace strata::storage::volume {

class ParityVolume final : public BlockDevice {
 public:
  ParityVolume(std::shared_ptr<Pool> pool, VolumeRecord record, bool readOnly);

  uint64_t sizeBytes() const override { return record_.sizeBytes; }
  bool readOnly() const override { return readOnly_; }
  std::string serial() const override;

  void readv(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) override;
  void writev(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) override;
  void flush(IoCompletion done) override;
  void discard(uint64_t offset, uint64_t length, IoCompletion done) override;
  void writeZeroes(uint64_t offset, uint64_t length, IoCompletion done) override;

  // Layout (also used by scrub): which leg holds parity / data chunk i of a row.
  static uint32_t parityLeg(uint32_t legs, uint64_t row) { return (legs - 1) - static_cast<uint32_t>(row % legs); }
  static uint32_t dataLeg(uint32_t legs, uint64_t row, uint32_t i) { return (parityLeg(legs, row) + 1 + i) % legs; }

 private:
  struct RowOp;
  bool rangeOk(uint64_t offset, uint64_t length, bool write, IoCompletion& done);
  void submitRows(bool write, uint64_t offset, std::vector<iovec> buffers, IoCompletion done);
  void directRead(std::shared_ptr<RowOp> op);
  void lockedRowOp(std::shared_ptr<RowOp> op);
  void rowReadPhase(std::shared_ptr<RowOp> op);
  void rowFinish(std::shared_ptr<RowOp> op);
  void finish(std::shared_ptr<RowOp> op, int result);
  bool legReadable(uint32_t leg, uint64_t legOffset, uint64_t length) const;
  bool legWritable(uint32_t leg, uint64_t legOffset, uint64_t length) const;
  void lockRow(uint64_t row, std::function<void()> run);
  void unlockRow(uint64_t row);

  std::shared_ptr<Pool> pool_;
  VolumeRecord record_;
  bool readOnly_;
  uint32_t legs_;
  uint64_t stripe_;
  std::map<uint64_t, std::deque<std::function<void()>>> lockedRows_;
};

}  // namespace strata::storage::volume
