// LeggedVolume: the BlockDevice of linear, striped (RAID 0), mirror (RAID 1)
// and RAID 10 volumes, which are all "stripes over mirror sets": the volume
// is cut into stripe-size chunks rotated over `sets`, and each set is
// `mirrors` legs holding the same bytes. Reads take one readable copy (and
// fall back to the next on error); writes go to every writable copy and
// succeed while at least one does, which is how a degraded mirror keeps going.
#pragma once

#include <memory>

#include "storage/block_device.h"
#include "storage/volume/leg_io.h"
#include "storage/volume/pool.h"

namespace strata::storage::volume {

class LeggedVolume final : public BlockDevice {
 public:
  LeggedVolume(std::shared_ptr<Pool> pool, VolumeRecord record, bool readOnly);

  uint64_t sizeBytes() const override { return record_.sizeBytes; }
  bool readOnly() const override { return readOnly_; }
  std::string serial() const override;

  void readv(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) override;
  void writev(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) override;
  void flush(IoCompletion done) override;
  void discard(uint64_t offset, uint64_t length, IoCompletion done) override;
  void writeZeroes(uint64_t offset, uint64_t length, IoCompletion done) override;

  struct Piece {
    uint32_t set;
    uint64_t legOffset;
    uint64_t requestOffset;  // where the piece starts within the request
    uint64_t length;
  };
  // How [offset, offset+length) of the volume maps onto mirror sets.
  std::vector<Piece> mapRange(uint64_t offset, uint64_t length) const;

 private:
  bool rangeOk(uint64_t offset, uint64_t length, bool write, IoCompletion& done);
  void readPiece(const Piece& piece, std::vector<iovec> buffers, uint32_t attempt, uint32_t first, IoCompletion done);
  void writePiece(const Piece& piece, LegOp op, std::vector<iovec> buffers, IoCompletion done);
  const Leg& leg(uint32_t set, uint32_t copy) const { return record_.legs[set * mirrors_ + copy]; }

  std::shared_ptr<Pool> pool_;
  VolumeRecord record_;
  bool readOnly_;
  bool redundant_;
  uint32_t sets_;
  uint32_t mirrors_;
  uint32_t nextReadCopy_ = 0;
};

}  // namespace strata::storage::volume
