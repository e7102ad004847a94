// storage_bench volumes: pools of sparse PV files in the bench directory, one
// volume per pool, created through the volume manager's public API and
// registered in a private pool registry (STRATA_POOL_DIR), so the bench opens
// them exactly as `strata run --disk pool:NAME/VOLUME` does. Also the RAID 5
// rebuild measurement, through the code behind `strata pool replace`.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/event_loop.h"
#include "base/result.h"
#include "storage/block_device.h"
#include "storage/volume/maintenance.h"
#include "storage/volume/pool.h"

namespace strata::bench {

struct VolumeLayout {
  std::string label;  // the row name in the tables
  storage::volume::VolumeType type = storage::volume::VolumeType::Linear;
  uint32_t pvs = 1;
  uint32_t stripes = 0;  // striped/raid5/raid10 data legs
  uint32_t mirrors = 2;  // mirror/raid10 copies
};

struct PoolVolume {
  std::string poolName;
  std::string spec;  // "pool:NAME/vol"
  std::vector<std::string> pvPaths;  // what the pool opens: the files, or devices over them
  std::vector<std::string> files;    // the PV files, to remove afterwards
};

// Turns a freshly made PV file into the path the pool should use (a loop device over it).
using PvMapper = std::function<Result<std::string>(const std::string& file)>;

// Creates PV files dir/NAME.pvN sized for a volume of volumeBytes in that
// layout, the pool NAME on them, its registry entry and the volume "vol"
// (a thin volume in the thin pool "tp" for thin layouts). mapPv, when set,
// decides what path each PV file is used through.
Result<PoolVolume> createPoolVolume(const std::string& dir, const std::string& poolName, const VolumeLayout& layout,
                                    uint64_t volumeBytes, EventLoop& loop, const PvMapper& mapPv = {});

// The volume as a BlockDevice plus the pool under it, to watch per-PV queues.
struct OpenedVolume {
  std::shared_ptr<storage::volume::Pool> pool;
  std::unique_ptr<storage::BlockDevice> device;
};
// What openVolumeDisk does (registry lookup, Pool::open, openVolume), keeping the pool.
Result<OpenedVolume> openWithPool(const PoolVolume& volume, bool direct, EventLoop& loop);

// Drops the page cache of the files (after they were flushed), so the next reads go to the disk.
void dropPageCache(const std::vector<std::string>& paths);

// The deepest per-PV queue and the most PVs busy at once, sampled while a workload runs.
class PvQueueProbe {
 public:
  explicit PvQueueProbe(const storage::volume::Pool& pool) : pool_(pool) {}
  void sample();
  unsigned maxPerPv() const { return maxPerPv_; }
  unsigned maxBusyPvs() const { return maxBusyPvs_; }

 private:
  const storage::volume::Pool& pool_;
  unsigned maxPerPv_ = 0;
  unsigned maxBusyPvs_ = 0;
};

struct RebuildMeasurement {
  storage::volume::ReplaceReport replace;
  storage::volume::ScrubReport scrub;  // check-only scrub of the rebuilt volume
  double scrubSeconds = 0;
};
// A RAID 5 volume over pvs PVs, filled, flushed and evicted from the page
// cache; then PV #1 fails, a fresh PV file replaces it (replacePhysicalVolume,
// as `strata pool replace`), and a check-only scrub verifies the parity.
Result<RebuildMeasurement> measureRaid5Rebuild(const std::string& dir, uint32_t pvs, uint64_t volumeBytes,
                                               EventLoop& loop);

}  // namespace strata::bench
