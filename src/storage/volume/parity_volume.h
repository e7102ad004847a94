// ParityVolume: the BlockDevice of a RAID 5 volume. Rows of (legs-1) data
// chunks plus one parity chunk, parity rotating left-symmetric like md's
// default. Healthy reads go straight to the data legs, merged per leg. Writes
// submitted in one loop iteration are gathered per row into a batch that
// locks only the 4 KiB column slice it touches (the parity of a byte range
// depends only on that range of the data chunks) and computes parity per
// column the cheapest way: from the other data chunks (reconstruct-write, no
// reads for full stripes) or from old data and old parity
// (read-modify-write). A write batch marks its row slice in the write-intent
// bitmaps of every leg's PV before writing. With one leg missing, its contents
// are reconstructed from the others, so the volume stays readable and writable
// degraded, except in rows an unclean shutdown left unverified (EIO there).
#pragma once

#include <map>
#include <memory>

#include "storage/block_device.h"
#include "storage/volume/leg_io.h"
#include "storage/volume/pool.h"
#include "storage/volume/range_lock.h"

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
  // One request's part of a row: bytes [start, start+length) of the row's data.
  struct Member {
    uint64_t start;
    uint64_t length;
    std::vector<iovec> buffers;
    IoCompletion done;
  };
  struct Batch;
  // A healthy-path read, kept to be redone reconstructing if a leg fails.
  struct DirectRead {
    uint64_t offset = 0;
    std::vector<iovec> buffers;
    IoCompletion done;
  };

  bool rangeOk(uint64_t offset, uint64_t length, bool write, IoCompletion& done);
  // Cuts a request into rows and calls fn(row, member) for each.
  template <typename Fn>
  void splitRows(uint64_t offset, std::vector<iovec> buffers, IoCompletion done, Fn fn);
  void directRead(uint64_t offset, std::vector<iovec> buffers, IoCompletion done);
  void lockedRead(uint64_t offset, std::vector<iovec> buffers, IoCompletion done);
  void queueWrite(uint64_t row, Member member);
  void startQueued();
  void lockBatch(std::shared_ptr<Batch> batch);
  // Calls visit(member, dataIndex, leg, column, from, to) for every column
  // slice [from, to) (in-chunk offsets) that a member of the batch writes.
  template <typename Visit>
  void forEachWrittenSlice(const Batch& batch, Visit&& visit) const;
  void runBatch(std::shared_ptr<Batch> batch);
  void computeBatch(std::shared_ptr<Batch> batch);
  void finishBatch(std::shared_ptr<Batch> batch, int result);
  bool legReadable(uint32_t leg, uint64_t legOffset, uint64_t length) const;
  AlignedBuffer takeScratch(uint64_t bytes);
  void returnScratch(AlignedBuffer buffer, uint64_t bytes);

  std::shared_ptr<Pool> pool_;
  VolumeRecord record_;
  bool readOnly_;
  uint32_t legs_;
  uint64_t stripe_;
  std::vector<uint32_t> pvs_;  // every PV under the volume, for flush
  std::shared_ptr<RangeLock> lock_;
  std::map<uint64_t, std::shared_ptr<Batch>> forming_;  // writes gathered this loop iteration, by row
  bool startPosted_ = false;
  // Batch scratch space (legs x stripe) for reuse: fresh large allocations
  // are mmapped and would page-fault on every batch.
  std::vector<AlignedBuffer> spareScratch_;
  NodePool<DirectRead> directReads_;
  std::shared_ptr<char> alive_ = std::make_shared<char>();  // the posted start checks the volume still exists
};

}  // namespace strata::storage::volume
