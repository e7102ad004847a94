// ExtentAllocator: which extents of each PV are free, derived from the pool
// record, and the placement rules: a linear volume may take extents anywhere;
// each leg of a striped or RAID volume lives on its own PV so one PV failure
// costs at most one leg.
#pragma once

#include <cstdint>
#include <set>
#include <vector>

#include "base/result.h"
#include "storage/volume/pool_format.h"

namespace strata::storage::volume {

class ExtentAllocator {
 public:
  // usable[i] says whether PV i may receive new extents (present and active).
  ExtentAllocator(const PoolRecord& pool, std::vector<bool> usable);

  uint64_t freeExtents(uint32_t pv) const;
  uint64_t totalFree() const;

  // count extents anywhere, continuing after `after` (pv, next extent) when possible.
  Result<std::vector<ExtentRun>> allocateAnywhere(uint64_t count, const ExtentRun* after = nullptr);
  // count extents on one PV.
  Result<std::vector<ExtentRun>> allocateOnPv(uint32_t pv, uint64_t count, const ExtentRun* after = nullptr);
  // `legs` distinct PVs (not in `exclude`) that each have count free extents, most free first.
  Result<std::vector<uint32_t>> choosePvs(uint32_t legs, uint64_t count, const std::set<uint32_t>& exclude = {}) const;
  void release(const ExtentRun& run);

 private:
  void take(uint32_t pv, uint64_t start, uint64_t count);
  std::vector<std::vector<bool>> used_;
  std::vector<bool> usable_;
};

// Appends a run to a leg, merging it with the last run when contiguous.
void appendRun(Leg& leg, const ExtentRun& run);
// Cuts a leg to its first `extents` extents; returns the runs removed.
std::vector<ExtentRun> truncateLeg(Leg& leg, uint64_t extents);

}  // namespace strata::storage::volume
