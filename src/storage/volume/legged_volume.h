// LeggedVolume: the BlockDevice of linear, striped (RAID 0), mirror (RAID 1)
// and RAID 10 volumes, which are all "stripes over mirror sets": the volume
// is cut into stripe-size chunks rotated over `sets`, and each set is
// `mirrors` legs holding the same bytes. Reads take one readable copy (and
// fall back to the next on error); writes go to every writable copy and
// succeed while at least one does, which is how a degraded mirror keeps going.
// Redundant writes mark their regions in the write-intent bitmaps first, and
// lock their range while a rebuild or scrub runs on the volume.
#pragma once

#include <memory>

#include "storage/block_device.h"
#include "storage/volume/leg_io.h"
#include "storage/volume/pool.h"
#include "storage/volume/range_lock.h"

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

  // A piece's `leg` is the mirror set it goes to.
  using Piece = LegGather::Piece;

 private:
  bool rangeOk(uint64_t offset, uint64_t length, bool write, IoCompletion& done);
  // Cuts [offset, +length) into one piece per contiguous range of each mirror
  // set (chunks rotate over the sets, so a set's chunks in one request are
  // adjacent on its legs) and hands each to fn with its completion.
  template <typename Fn>
  void dispatch(uint64_t offset, uint64_t length, std::vector<iovec> buffers, IoCompletion done, Fn fn);
  // A read of one piece, tried on each copy in turn from `first`.
  struct ReadAttempt {
    Piece piece;
    uint32_t first = 0;
    uint32_t attempt = 0;
    IoCompletion done;
  };
  void readPiece(Piece piece, uint32_t first, IoCompletion done);
  void readCopy(ReadAttempt* read, uint32_t attempt);
  void finishRead(ReadAttempt* read, int result);
  void writePiece(Piece piece, LegOp op, IoCompletion done);
  void writeCopies(Piece piece, LegOp op, IoCompletion done);
  const Leg& leg(uint32_t set, uint32_t copy) const { return record_.legs[set * mirrors_ + copy]; }

  std::shared_ptr<Pool> pool_;
  VolumeRecord record_;
  bool readOnly_;
  bool redundant_;
  uint32_t sets_;
  uint32_t mirrors_;
  uint32_t nextReadCopy_ = 0;
  std::vector<uint32_t> pvs_;  // every PV under the volume, for flush
  std::shared_ptr<RangeLock> lock_;  // redundant volumes: shared with maintenance
  NodePool<ReadAttempt> reads_;
};

}  // namespace strata::storage::volume
