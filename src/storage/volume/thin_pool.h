// ThinPoolEngine: thin provisioning over a thin pool's data and metadata
// volumes. Thin volumes map virtual chunks to data chunks on first write;
// snapshots and clones share chunks (reference counts derived from the
// mappings) and break the sharing by copy-on-write. Mapping changes are
// journaled to the metadata volume at flush, after the data is durable, so a
// crash returns every thin volume to its state at the last completed flush.
// Freed chunks are reused only after the flush that freed them.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <vector>

#include "storage/block_device.h"
#include "storage/volume/io_util.h"
#include "storage/volume/pool.h"
#include "storage/volume/thin_metadata.h"

namespace strata::storage::volume {

class ThinPoolEngine : public std::enable_shared_from_this<ThinPoolEngine> {
 public:
  // Writes empty thin metadata (superblock, empty checkpoint) onto `meta`.
  static Result<void> format(BlockDevice& meta, EventLoop& loop, uint32_t chunkSize);
  // Loads the metadata; orphaned thin devices (no volume in the pool record) are dropped.
  static Result<std::shared_ptr<ThinPoolEngine>> open(std::shared_ptr<Pool> pool, const VolumeRecord& thinPool);
  ~ThinPoolEngine();

  const std::string& name() const { return name_; }
  uint32_t chunkSize() const { return chunkSize_; }
  uint64_t dataChunks() const { return refcounts_.size(); }
  uint64_t usedChunks() const { return usedChunks_; }
  uint64_t mappedChunks(uint32_t device) const;
  uint64_t metadataUsedBytes() const;
  uint64_t metadataSizeBytes() const { return layout_.metaSize; }

  std::unique_ptr<BlockDevice> openThin(uint32_t device, uint64_t sizeBytes, bool readOnly);

  // Management, synchronous (run the loop): each is durable when it returns.
  Result<void> snapshotDevice(uint32_t newDevice, uint32_t origin);
  Result<void> deleteDevice(uint32_t device);
  Result<void> truncateDevice(uint32_t device, uint64_t sizeBytes);
  Result<void> dataGrown();  // the data volume was extended
  Result<void> commitSync();

  // --- the thin volumes' I/O path.
  void read(uint32_t device, uint64_t offset, std::vector<iovec> buffers, IoCompletion done);
  void write(uint32_t device, uint64_t offset, std::vector<iovec> buffers, IoCompletion done);
  void zero(uint32_t device, uint64_t offset, uint64_t length, bool discard, IoCompletion done);
  void flush(IoCompletion done);

 private:
  struct ChunkRequest;
  struct ChunkRun {
    uint32_t first, count;
  };
  ThinPoolEngine(std::shared_ptr<Pool> pool, const VolumeRecord& thinPool);
  Result<void> load();
  void recount();
  // Cuts a write, or a zero/discard of part of a chunk, into per-chunk requests (kind: ChunkRequest::Kind).
  void splitChunks(int kind, uint32_t device, uint64_t offset, uint64_t length, std::vector<iovec> buffers,
                   IoCompletion done);
  // Drops the mappings of whole chunks [first, end) of a zero/discard, one
  // step of chunks per loop iteration; `step` completes after the last step.
  void dropWholeChunks(int kind, uint32_t device, uint64_t first, uint64_t end, std::shared_ptr<IoJoin> join,
                       IoCompletion step);
  void unmapRun(uint32_t device, uint64_t first, uint64_t end);
  void chunkOp(std::shared_ptr<ChunkRequest> request);
  void chunkOpLocked(std::shared_ptr<ChunkRequest> request);
  void writeNewChunk(std::shared_ptr<ChunkRequest> request, uint32_t source, uint32_t fresh, IoCompletion done);
  bool allocate(uint32_t& chunk);
  void map(uint32_t device, uint64_t vchunk, uint32_t chunk);
  void unmap(uint32_t device, uint64_t vchunk);
  void decref(uint32_t chunk);
  void runCommit();
  void finishCommit(std::vector<ChunkRun> freed, std::vector<IoCompletion> waiters, int result);

  std::shared_ptr<Pool> pool_;
  std::string name_;
  uint32_t chunkSize_;
  std::unique_ptr<BlockDevice> data_;
  std::unique_ptr<BlockDevice> meta_;
  ThinMetaLayout layout_;
  ThinSuperblock super_;
  uint64_t journalTail_ = 0;   // bytes of journal in use
  uint64_t journalSeq_ = 0;    // last record written
  std::map<uint32_t, ChunkMap> devices_;
  std::vector<uint32_t> refcounts_;  // per data chunk; kQuarantined while its release is not durable
  uint64_t usedChunks_ = 0;
  uint64_t allocCursor_ = 0;
  std::vector<ThinOp> pendingOps_;      // since the last commit started
  std::vector<ChunkRun> pendingFree_;   // chunks whose release is in pendingOps_
  std::map<std::pair<uint32_t, uint64_t>, std::deque<std::function<void()>>> busyChunks_;
  bool commitRunning_ = false;
  bool failed_ = false;  // metadata could not be written: refuse further writes
  std::vector<IoCompletion> commitWaiters_;
  bool warnedFull_ = false;
};

}  // namespace strata::storage::volume
