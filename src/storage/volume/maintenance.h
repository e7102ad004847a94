// Pool maintenance: replacing a PV (copying it while it still works, or
// rebuilding its RAID legs from the surviving copies or parity when it is
// gone) and scrubbing (comparing mirror copies and checking parity, repairing
// what differs). Both return when done, running the pool's loop meanwhile:
// 1 MiB steps, each reading its legs at once, four steps in flight, under the
// volume's lock (mirror writes take it too while maintenance runs); progress
// and throughput are reported per step. Resync after an unclean shutdown is
// a scrub-and-repair of the ranges the write-intent bitmaps mark.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/result.h"
#include "storage/volume/pool.h"
#include "storage/volume/write_intent.h"

namespace strata::storage::volume {

struct MaintenanceProgress {
  uint64_t doneBytes = 0;
  uint64_t totalBytes = 0;
  double bytesPerSecond = 0;
};
using ProgressCallback = std::function<void(const MaintenanceProgress&)>;

// "#3", "3", a UUID or a path (current or last seen) naming one of the pool's PVs.
Result<uint32_t> findPhysicalVolume(const Pool& pool, const std::string& which);

struct ReplaceReport {
  uint32_t pv = 0;
  bool copied = false;      // the old PV was readable and was copied as-is
  uint64_t bytes = 0;       // written to the new PV
  double seconds = 0;
  std::vector<std::string> zeroedVolumes;  // non-redundant volumes whose extents there were lost
  // RAID 5 rows rebuilt from parity that an unclean shutdown left unverified
  // ("volume: N MiB at leg offsets A-B, ..."): their rebuilt data may be wrong.
  std::vector<std::string> atRisk;
};
// force: also replace when non-redundant volumes lose their extents on it (they read zeroes there).
Result<ReplaceReport> replacePhysicalVolume(Pool& pool, const std::string& oldPv, const std::string& newPath,
                                            bool force, const ProgressCallback& progress);

struct ScrubReport {
  uint64_t bytesChecked = 0;
  uint64_t mirrorMismatches = 0;   // 4 KiB blocks where copies differed
  uint64_t parityMismatches = 0;   // 4 KiB blocks whose parity was wrong
  uint64_t repaired = 0;
  std::vector<std::string> skipped;  // volumes that could not be checked (degraded)
};
Result<ScrubReport> scrubPool(Pool& pool, bool repair, const ProgressCallback& progress);

// The leg ranges of a redundant volume under regions its PVs' write-intent
// bitmaps mark (merged, in order).
std::vector<ByteRange> dirtyLegRanges(const Pool& pool, const VolumeRecord& volume);
// At open for writing: resyncs the marked ranges of every redundant volume
// (RAID 5 parity from data, mirrors from the first readable copy), then
// clears the bits. RAID 5 volumes with a leg missing cannot be resynced:
// their marked rows are recorded as at risk and their bits kept.
Result<void> resyncAfterUncleanShutdown(Pool& pool);

}  // namespace strata::storage::volume
