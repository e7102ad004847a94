// Pool maintenance: replacing a PV (copying it while it still works, or
// rebuilding its RAID legs from the surviving copies or parity when it is
// gone) and scrubbing (comparing mirror copies and checking parity, repairing
// what differs). Both return when done, running the pool's loop meanwhile:
// 1 MiB steps, each reading its legs at once, four steps in flight, under the
// RAID 5 volume's lock; progress and throughput are reported per step.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/result.h"
#include "storage/volume/pool.h"

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

}  // namespace strata::storage::volume
