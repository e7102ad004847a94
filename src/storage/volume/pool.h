// Pool: a storage pool opened in this process — its PVs (each a RawImage),
// the newest valid metadata, and the management operations that change it
// (create/resize/remove/rename volumes, snapshots, add PVs). Commits rewrite
// the metadata slots on every live PV. Volumes opened from a pool keep it
// alive (shared ownership), so a BlockDevice can be handed out on its own.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/event_loop.h"
#include "base/result.h"
#include "storage/block_device.h"
#include "storage/raw_image.h"
#include "storage/volume/io_util.h"
#include "storage/volume/pool_format.h"
#include "storage/volume/range_lock.h"

namespace strata::storage::volume {

class ThinPoolEngine;
class WriteIntent;

struct PoolCreateOptions {
  uint64_t extentSize = kDefaultExtentSize;
  bool force = false;  // relabel PVs that belong to another pool
  // Write-intent bitmap regions (larger on PVs whose bits would not fit).
  uint64_t intentRegionBytes = kIntentDefaultRegionBytes;
};

struct PoolOpenOptions {
  bool readOnly = false;
  bool direct = false;  // O_DIRECT on the PVs
  // How long to wait for another holder's lock. A killed process's io_uring
  // can keep its files (and their locks) alive for a moment after it exits.
  int lockWaitMs = 3000;
  // How long a region of the write-intent bitmap stays marked after its last
  // write has been flushed (so hot regions do not flap).
  int intentIdleMs = 5000;
  // Region size for bitmaps written fresh (new PVs, pools from before the
  // bitmap, damaged headers); an existing header keeps its own.
  uint64_t intentRegionBytes = kIntentDefaultRegionBytes;
};

struct VolumeCreateOptions {
  VolumeType type = VolumeType::Linear;
  uint64_t sizeBytes = 0;
  uint32_t stripes = 0;             // striped/raid5/raid10 data legs; 0 = as many as the pool allows
  uint32_t mirrors = 2;             // mirror, raid10: copies
  uint32_t stripeSize = 64 << 10;   // striped, raid5, raid10
  // thin-pool: chunk size, metadata volume size (0 = derived from the data size), layout of both
  uint32_t chunkSize = 64 << 10;
  uint64_t metadataSize = 0;
  VolumeType dataType = VolumeType::Linear;
  std::string thinPool;  // thin: the thin pool to allocate from
};

// Space a volume occupies: for thin volumes the chunks it maps, for thin pools
// the chunks in use, otherwise its full size.
struct VolumeUsage {
  uint64_t sizeBytes = 0;
  uint64_t usedBytes = 0;
  uint64_t metadataUsedBytes = 0;  // thin pools
  uint64_t metadataSizeBytes = 0;
};

struct VolumeHealth {
  bool degraded = false;  // readable and writable with a leg missing
  bool failed = false;    // some data is not reachable
};

class Pool : public std::enable_shared_from_this<Pool> {
 public:
  // Labels the PVs and writes the first metadata.
  static Result<std::shared_ptr<Pool>> create(const std::string& name, const std::vector<std::string>& pvPaths,
                                              const PoolCreateOptions& options, EventLoop& loop);
  // Opens from the PVs that can be found (any order); missing ones leave the pool degraded.
  static Result<std::shared_ptr<Pool>> open(const std::vector<std::string>& pvPaths, const PoolOpenOptions& options,
                                            EventLoop& loop);
  ~Pool();

  const PoolRecord& record() const { return record_; }
  const std::string& name() const { return record_.name; }
  uint64_t extentSize() const { return record_.extentSize; }
  EventLoop& loop() { return loop_; }
  bool readOnly() const { return options_.readOnly; }
  bool direct() const { return options_.direct; }
  const PoolOpenOptions& options() const { return options_; }
  // Paths of the PVs that are present, in PV order (for the pool registry).
  std::vector<std::string> presentPaths() const;

  // --- PV state as the I/O engines see it.
  uint32_t pvCount() const { return static_cast<uint32_t>(pvs_.size()); }
  bool pvPresent(uint32_t pv) const;        // opened and not failed since
  bool pvReadable(uint32_t pv) const;       // present and its data is current
  bool pvWritable(uint32_t pv) const;       // present, current or being rebuilt
  RawImage* pvImage(uint32_t pv) const;
  std::string pvDisplayName(uint32_t pv) const;
  // An I/O error on a PV under redundant data: marks it failed and persists that.
  void reportPvFailure(uint32_t pv, int error);
  // Test hook and `pool fail`: treat the PV as failed from now on.
  void failPhysicalVolume(uint32_t pv) { reportPvFailure(pv, -EIO); }
  // done, reporting an I/O error of the PV first (redundant volumes' requests).
  IoCompletion reportingFailures(uint32_t pv, IoCompletion done);
  VolumeHealth health(const VolumeRecord& volume) const;

  // --- management (synchronous: run the loop; never call from an I/O callback).
  Result<void> commit();
  Result<const VolumeRecord*> createVolume(const std::string& name, const VolumeCreateOptions& options);
  Result<void> resizeVolume(const std::string& name, uint64_t newSizeBytes, bool allowShrink);
  Result<void> removeVolume(const std::string& name);
  Result<void> renameVolume(const std::string& from, const std::string& to);
  // A thin snapshot (read-only) or clone (writable) sharing the origin's chunks.
  Result<void> snapshotVolume(const std::string& origin, const std::string& name, bool writable);
  Result<void> addPhysicalVolume(const std::string& path, bool force);
  Result<VolumeUsage> usage(const std::string& name);
  uint64_t freeExtents() const;

  // The volume as a disk. Snapshots and read-only pools give read-only devices.
  Result<std::unique_ptr<BlockDevice>> openVolume(const std::string& name, bool readOnly = false);
  // The thin pool engine for a thin-pool volume, shared by its thin volumes.
  Result<std::shared_ptr<ThinPoolEngine>> thinEngine(uint32_t thinPoolId);

  // The device of a linear/striped/mirror/raid5/raid10 record (also hidden ones).
  Result<std::unique_ptr<BlockDevice>> openLeggedVolume(const VolumeRecord& volume, bool readOnly);

  // The lock RAID 5 I/O and maintenance of one volume share (by volume id).
  std::shared_ptr<RangeLock> volumeLock(uint32_t volumeId);
  // The PVs' write-intent bitmaps (redundant volumes mark regions before writing).
  WriteIntent& writeIntent() { return *intent_; }
  const WriteIntent& writeIntent() const { return *intent_; }
  // Flushes the PVs (the present ones), telling the write-intent bitmaps.
  // Redundant volumes report a failing PV instead of passing its error on.
  void flushPvs(const std::vector<uint32_t>& pvs, bool redundant, IoCompletion done);

  // --- used by replace/scrub (maintenance.cpp).
  PoolRecord& mutableRecord() { return record_; }
  // Puts a freshly labeled PV at index pv (state Rebuilding); the previous
  // image, if it is still open and a different device, is handed back so its
  // data can be copied.
  Result<void> attachReplacement(uint32_t pv, const std::string& path, std::unique_ptr<RawImage>* previous);
  void markRebuilt(uint32_t pv);
  Result<void> zeroRuns(const std::vector<ExtentRun>& runs);

 private:
  struct PhysicalVolume {
    std::string path;
    std::unique_ptr<RawImage> image;  // null when missing
    bool failedAtRuntime = false;
  };

  Pool(EventLoop& loop, PoolOpenOptions options);
  Result<void> makeRing();
  void commitAsync(IoCompletion done);
  void runCommit();
  Result<void> lockPvs();
  Result<void> labelPv(uint32_t index, RawImage& image);
  std::vector<bool> allocatablePvs() const;
  Result<void> allocateLegs(VolumeRecord& volume, uint32_t legCount, uint64_t legExtents);
  Result<void> growLegs(VolumeRecord& volume, uint64_t newLegExtents);
  uint32_t defaultLegs(VolumeType type, uint32_t mirrors) const;

  EventLoop& loop_;
  PoolOpenOptions options_;
  PoolRecord record_;
  std::shared_ptr<IoRing> ring_;     // shared by the PVs' images
  std::vector<PhysicalVolume> pvs_;  // indexed like record_.pvs
  std::map<uint32_t, std::weak_ptr<ThinPoolEngine>> thinEngines_;
  std::map<uint32_t, std::weak_ptr<RangeLock>> volumeLocks_;
  bool commitRunning_ = false;
  std::vector<IoCompletion> commitWaiters_;
  struct PvCompletion {
    uint32_t pv = 0;
    IoCompletion done;
  };
  NodePool<PvCompletion> pvCompletions_;
  std::unique_ptr<WriteIntent> intent_;  // after pvs_: closed before the images
};

}  // namespace strata::storage::volume
