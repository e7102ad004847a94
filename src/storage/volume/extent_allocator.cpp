#include "storage/volume/extent_allocator.h"

#include <fmt/core.h>

#include <algorithm>
#include <numeric>

namespace strata::storage::volume {

ExtentAllocator::ExtentAllocator(const PoolRecord& pool, std::vector<bool> usable) : usable_(std::move(usable)) {
  usable_.resize(pool.pvs.size(), false);
  used_.resize(pool.pvs.size());
  for (size_t i = 0; i < pool.pvs.size(); ++i) used_[i].assign(pool.pvs[i].extentCount, false);
  for (const auto& v : pool.volumes)
    for (const auto& leg : v.legs)
      for (const auto& run : leg.runs) take(run.pv, run.start, run.count);
}

void ExtentAllocator::take(uint32_t pv, uint64_t start, uint64_t count) {
  if (pv >= used_.size()) return;
  for (uint64_t e = start; e < start + count && e < used_[pv].size(); ++e) used_[pv][e] = true;
}

void ExtentAllocator::release(const ExtentRun& run) {
  if (run.pv >= used_.size()) return;
  for (uint64_t e = run.start; e < run.start + run.count && e < used_[run.pv].size(); ++e) used_[run.pv][e] = false;
}

uint64_t ExtentAllocator::freeExtents(uint32_t pv) const {
  if (pv >= used_.size() || !usable_[pv]) return 0;
  return static_cast<uint64_t>(std::count(used_[pv].begin(), used_[pv].end(), false));
}

uint64_t ExtentAllocator::totalFree() const {
  uint64_t total = 0;
  for (uint32_t pv = 0; pv < used_.size(); ++pv) total += freeExtents(pv);
  return total;
}

Result<std::vector<ExtentRun>> ExtentAllocator::allocateOnPv(uint32_t pv, uint64_t count, const ExtentRun* after) {
  if (freeExtents(pv) < count)
    return Error{fmt::format("PV #{} has {} free extents, {} needed", pv, freeExtents(pv), count)};
  std::vector<ExtentRun> runs;
  auto& bits = used_[pv];
  // Continue the previous run first so grown volumes stay contiguous.
  uint64_t e = after && after->pv == pv ? after->start + after->count : 0;
  uint64_t scanned = 0;
  while (count > 0 && scanned < bits.size()) {
    if (e >= bits.size()) e = 0;
    if (bits[e]) {
      ++e;
      ++scanned;
      continue;
    }
    uint64_t start = e;
    while (e < bits.size() && !bits[e] && e - start < count) ++e;
    uint64_t n = e - start;
    take(pv, start, n);
    runs.push_back({pv, start, n});
    count -= n;
    scanned += n;
  }
  return runs;
}

Result<std::vector<ExtentRun>> ExtentAllocator::allocateAnywhere(uint64_t count, const ExtentRun* after) {
  if (totalFree() < count)
    return Error{fmt::format("the pool has {} free extents, {} needed", totalFree(), count)};
  std::vector<ExtentRun> runs;
  std::vector<uint32_t> order(used_.size());
  std::iota(order.begin(), order.end(), 0);
  if (after) std::stable_partition(order.begin(), order.end(), [&](uint32_t pv) { return pv == after->pv; });
  for (uint32_t pv : order) {
    if (count == 0) break;
    uint64_t take = std::min(count, freeExtents(pv));
    if (take == 0) continue;
    auto part = allocateOnPv(pv, take, after && after->pv == pv ? after : nullptr);
    if (!part) return part.error();
    runs.insert(runs.end(), part->begin(), part->end());
    count -= take;
  }
  return runs;
}

Result<std::vector<uint32_t>> ExtentAllocator::choosePvs(uint32_t legs, uint64_t count,
                                                         const std::set<uint32_t>& exclude) const {
  std::vector<uint32_t> candidates;
  for (uint32_t pv = 0; pv < used_.size(); ++pv)
    if (!exclude.count(pv) && freeExtents(pv) >= count) candidates.push_back(pv);
  if (candidates.size() < legs)
    return Error{fmt::format("needs {} PVs with {} free extents each; the pool has {}", legs, count, candidates.size())};
  std::stable_sort(candidates.begin(), candidates.end(),
                   [&](uint32_t a, uint32_t b) { return freeExtents(a) > freeExtents(b); });
  candidates.resize(legs);
  std::sort(candidates.begin(), candidates.end());
  return candidates;
}

void appendRun(Leg& leg, const ExtentRun& run) {
  if (!leg.runs.empty()) {
    ExtentRun& last = leg.runs.back();
    if (last.pv == run.pv && last.start + last.count == run.start) {
      last.count += run.count;
      return;
    }
  }
  leg.runs.push_back(run);
}

std::vector<ExtentRun> truncateLeg(Leg& leg, uint64_t extents) {
  std::vector<ExtentRun> removed;
  std::vector<ExtentRun> kept;
  for (const ExtentRun& run : leg.runs) {
    if (extents >= run.count) {
      kept.push_back(run);
      extents -= run.count;
    } else if (extents > 0) {
      kept.push_back({run.pv, run.start, extents});
      removed.push_back({run.pv, run.start + extents, run.count - extents});
      extents = 0;
    } else {
      removed.push_back(run);
    }
  }
  leg.runs = std::move(kept);
  return removed;
}

}  // namespace strata::storage::volume
