// WriteIntent: the write-intent bitmaps of a pool's PVs (like md's internal
// bitmap), which close the RAID write hole. Before a redundant volume writes
// to a region of a PV whose bit is clear, the bit is set on every PV the write
// touches and made durable; writes to regions already marked go straight
// through. Bits are cleared lazily: once a region's writes have completed, a
// later flush of its PV has completed and it has been idle for a while. At
// open, the regions left marked by an unclean shutdown are resynced
// (maintenance.cpp), and a clean close clears everything.
#pragma once

#include <sys/uio.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <unordered_map>
#include <vector>

#include "base/result.h"
#include "storage/io_ring.h"
#include "base/loop_timer.h"
#include "storage/volume/io_util.h"
#include "storage/volume/pool_format.h"

namespace strata::storage::volume {

class Pool;

// Bytes [offset, offset+length) of a PV (offsets count from the PV's start).
struct PvRange {
  uint32_t pv;
  uint64_t offset;
  uint64_t length;
};

// A half-open byte range [lo, hi).
struct ByteRange {
  uint64_t lo;
  uint64_t hi;
};

class WriteIntent {
 public:
  // Reads every present PV's bitmap. A damaged or foreign header marks all
  // of that PV's regions dirty (with a warning): everything is resynced.
  static Result<std::unique_ptr<WriteIntent>> load(Pool& pool, std::chrono::milliseconds idle);
  ~WriteIntent();

  // --- the write path
  // Runs go (possibly before returning) once every region under ranges is
  // durably marked on its PV; the caller then writes and calls end(ranges).
  // PVs that cannot be written are skipped.
  void begin(const std::vector<PvRange>& ranges, std::function<void()> go);
  void end(const std::vector<PvRange>& ranges);
  // A flush of the PV starts / has completed (ticket from flushStarted).
  uint64_t flushStarted(uint32_t pv);
  void flushCompleted(uint32_t pv, uint64_t ticket);

  // --- open, resync, replace, close
  // The PV's marked data bytes (absolute PV offsets), merged and in order.
  std::vector<ByteRange> dirtyRanges(uint32_t pv) const;
  bool anyDirty() const;
  // Clears every bit except those of at-risk volumes' rows and writes the
  // bitmaps (with a valid header) durably where they changed, or everywhere
  // with rewrite. Only with no write in flight: at open after the resync,
  // and at close.
  Result<void> settle(bool rewrite = false);
  // A RAID 5 volume whose dirty rows could not be resynced because a leg is
  // missing: reconstructing them cannot be trusted, so their bits are kept.
  // Ranges are leg offsets.
  void setAtRisk(uint32_t volumeId, std::vector<ByteRange> legRanges);
  bool atRisk(uint32_t volumeId, uint64_t legOffset, uint64_t length) const;
  uint64_t atRiskBytes(uint32_t volumeId) const;
  const std::map<uint32_t, std::vector<ByteRange>>& atRiskVolumes() const { return atRisk_; }
  // The volume was rebuilt: its rows are consistent again and their bits go.
  void releaseAtRisk(uint32_t volumeId);
  // A replacement PV was attached at index pv (labelPv zeroed its bitmap).
  Result<void> attach(uint32_t pv);
  // Flushes the PVs, then clears every bit not kept for an at-risk volume.
  void closeClean();

  // Runs the loop until no bitmap write is in flight.
  void drain();

  // For tests: regions with their bit set on the PVs this session writes,
  // and how many bitmap blocks were written while volumes ran.
  size_t markedRegions() const;
  uint64_t bitmapWrites() const { return bitmapWrites_; }

 private:
  struct Waiter {
    uint32_t remaining;
    std::function<void()> go;
  };
  struct Block {
    bool writing = false;
    bool queued = false;       // changed while a write was in flight: write again
    uint64_t started = 0;      // generations of writes of this block
    uint64_t completed = 0;
    std::vector<std::pair<uint64_t, std::shared_ptr<Waiter>>> waiters;  // (generation needed, waiter)
    AlignedBuffer copy;        // what the write in flight carries
    iovec iov{};
  };
  struct Region {
    uint32_t inflight = 0;
    uint64_t durableAt = 0;  // the block generation that made the bit durable
    uint64_t lastEndFlush = 0;  // flushes started when its last write ended
    std::chrono::steady_clock::time_point lastEnd{};
    bool kept = false;  // set before this session (an at-risk row): not cleared here
  };
  struct PvBitmap {
    bool usable = false;     // present and writable this session
    uint64_t dataBytes = 0;
    IntentHeader header;
    bool allDirty = false;   // the header could not be trusted
    bool headerOnDisk = false;
    AlignedBuffer bits;      // the bit blocks as they should be on disk
    size_t blockCount = 0;
    std::vector<Block> blocks;
    std::unordered_map<uint64_t, Region> regions;  // marked this session
    uint64_t flushesStarted = 0;
    uint64_t flushedThrough = 0;  // the newest flush ticket completed
  };

  WriteIntent(Pool& pool, std::chrono::milliseconds idle) : pool_(pool), idle_(idle) {}
  Result<void> loadPv(uint32_t pv);
  bool bit(const PvBitmap& b, uint64_t region) const;
  void setBit(PvBitmap& b, uint64_t region, bool value);
  void markNew(uint32_t pv, uint64_t region, Region& g, std::vector<std::pair<uint32_t, size_t>>& toWrite);
  void writeBlock(uint32_t pv, size_t block);
  void blockWritten(uint32_t pv, size_t block, uint64_t generation, int result);
  void cleanIdle();
  Result<void> writeAreaSync(uint32_t pv);
  std::vector<std::vector<ByteRange>> keptRanges() const;
  template <typename Fn>
  void forEachRegion(const PvRange& range, Fn fn);

  Pool& pool_;
  std::chrono::milliseconds idle_;
  std::vector<PvBitmap> pvs_;
  std::map<uint32_t, std::vector<ByteRange>> atRisk_;
  std::unique_ptr<LoopTimer> cleaner_;
  bool cleanerArmed_ = false;
  uint64_t bitmapWrites_ = 0;
  // Last: destroyed first, waiting for writes in the kernel before their buffers go.
  std::unique_ptr<IoRing> ring_;
};

}  // namespace strata::storage::volume
