#include "storage/volume/pool_report.h"

#include <fmt/core.h>

#include <set>

#include "storage/volume/extent_allocator.h"
#include "storage/volume/maintenance.h"

namespace strata::storage::volume {

std::string formatBytes(uint64_t bytes) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return fmt::format("{} B", bytes);
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 5) {
    value /= 1024;
    ++unit;
  }
  return fmt::format("{:.2f} {}", value, units[unit]);
}

PoolSummary summarizePool(const Pool& pool) {
  PoolSummary s;
  for (uint32_t pv = 0; pv < pool.pvCount(); ++pv)
    if (!pool.pvReadable(pv)) s.degraded = true;
  for (const auto& v : pool.record().volumes) {
    VolumeHealth h = pool.health(v);
    s.degraded |= h.degraded;
    s.failed |= h.failed;
  }
  return s;
}

namespace {

std::string layoutText(const VolumeRecord& v, const PoolRecord& pool) {
  switch (v.type) {
    case VolumeType::Linear: return "";
    case VolumeType::Striped: return fmt::format("{} stripes x {}", v.legs.size(), formatBytes(v.stripeSize));
    case VolumeType::Mirror: return fmt::format("{} copies", v.mirrors);
    case VolumeType::Raid5: return fmt::format("{}+1 parity, stripe {}", v.legs.size() - 1, formatBytes(v.stripeSize));
    case VolumeType::Raid10:
      return fmt::format("{} stripes x {} copies, stripe {}", v.legs.size() / v.mirrors, v.mirrors, formatBytes(v.stripeSize));
    case VolumeType::ThinPool: {
      const VolumeRecord* data = pool.findVolumeById(v.dataVolume);
      return fmt::format("chunk {}, data {}", formatBytes(v.chunkSize), data ? volumeTypeName(data->type) : "?");
    }
    case VolumeType::Thin: {
      const VolumeRecord* tp = pool.findVolumeById(v.thinPool);
      std::string text = fmt::format("in {}", tp ? tp->name : "?");
      if (!v.origin.empty()) text += fmt::format(", {} of {}", v.readOnly() ? "snapshot" : "clone", v.origin);
      return text;
    }
  }
  return "";
}

std::string pvsOf(const VolumeRecord& v) {
  std::set<uint32_t> pvs;
  for (const auto& leg : v.legs)
    for (const auto& run : leg.runs) pvs.insert(run.pv);
  std::string text;
  for (uint32_t pv : pvs) text += (text.empty() ? "#" : ",#") + std::to_string(pv);
  return text;
}

// The write-intent bitmaps' view: clean, or which volumes have marked
// ranges (in-flight writes, or a resync due after an unclean shutdown), and
// RAID 5 rows that cannot be trusted because a leg is missing as well.
std::string formatWriteIntent(const Pool& pool) {
  std::string lines;
  for (const auto& v : pool.record().volumes) {
    if (!isRedundant(v.type)) continue;
    uint64_t bytes = 0;
    for (const ByteRange& r : dirtyLegRanges(pool, v)) bytes += r.hi - r.lo;
    if (bytes == 0) continue;
    VolumeHealth h = pool.health(v);
    std::string state = v.type == VolumeType::Raid5 && (h.degraded || h.failed)
                            ? fmt::format("{} AT RISK after an unclean shutdown while degraded (reads that need "
                                          "reconstruction there fail; replace the missing PV)",
                                          formatBytes(bytes))
                            : fmt::format("{} dirty (writes in flight, or resync at the next open for writing)",
                                          formatBytes(bytes));
    lines += fmt::format("    {:<20} {:<9} {}\n", v.name, volumeTypeName(v.type), state);
  }
  return lines.empty() ? "  write intent: clean\n" : "  write intent:\n" + lines;
}

}  // namespace

std::string formatPoolStatus(Pool& pool) {
  const PoolRecord& r = pool.record();
  std::vector<bool> usable(pool.pvCount(), true);
  ExtentAllocator allocator(r, usable);
  PoolSummary summary = summarizePool(pool);
  uint64_t total = 0, free = 0;
  for (uint32_t pv = 0; pv < pool.pvCount(); ++pv) {
    total += r.pvs[pv].extentCount;
    free += allocator.freeExtents(pv);
  }
  std::string out = fmt::format("pool {}\n", r.name);
  out += fmt::format("  uuid:     {}\n", formatUuid(r.uuid));
  out += fmt::format("  state:    {}\n", summary.failed ? "FAILED (some volumes have data out of reach)"
                                         : summary.degraded ? "DEGRADED"
                                                            : "healthy");
  out += fmt::format("  extents:  {} each, {} total, {} free ({} of {})\n", formatBytes(r.extentSize), total, free,
                     formatBytes(free * r.extentSize), formatBytes(total * r.extentSize));
  out += fmt::format("  metadata: sequence {}\n", r.sequence);
  out += "  physical volumes:\n";
  for (uint32_t pv = 0; pv < pool.pvCount(); ++pv) {
    const PvRecord& p = r.pvs[pv];
    std::string state = pvStateName(p.state);
    if (!pool.pvPresent(pv)) state = p.state == PvState::Active ? "MISSING" : state + ", missing";
    else if (p.state != PvState::Active) state = state == "failed" ? "FAILED (stale)" : state;
    out += fmt::format("    #{:<3} {:<40} {:<16} {:>12}  {} extents, {} free\n", pv, p.lastPath, state,
                       formatBytes(p.sizeBytes), p.extentCount, allocator.freeExtents(pv));
  }
  out += fmt::format("  volumes:  {}\n", r.volumes.size());
  for (const auto& v : r.volumes) {
    VolumeHealth h = pool.health(v);
    if (!h.degraded && !h.failed) continue;
    out += fmt::format("    {:<20} {:<9} {}\n", v.name, volumeTypeName(v.type),
                       h.failed ? "FAILED: data out of reach" : "DEGRADED: running without a copy");
  }
  out += formatWriteIntent(pool);
  if (summary.degraded || summary.failed) {
    for (uint32_t pv = 0; pv < pool.pvCount(); ++pv)
      if (!pool.pvReadable(pv))
        out += fmt::format("  action:   strata pool replace {} '#{}' NEW-PV\n", r.name, pv);
  }
  return out;
}

std::string formatVolumeList(Pool& pool, bool showHidden) {
  const PoolRecord& r = pool.record();
  std::string out = fmt::format("{:<20} {:<10} {:>12} {:>12} {:<9} {:<10} {}\n", "NAME", "TYPE", "SIZE", "USED",
                                "HEALTH", "PVS", "LAYOUT");
  for (const auto& v : r.volumes) {
    if (v.hidden() && !showHidden) continue;
    std::string used = formatBytes(v.sizeBytes);
    std::string extra;
    if (v.type == VolumeType::Thin || v.type == VolumeType::ThinPool) {
      auto usage = pool.usage(v.name);
      if (usage) {
        used = formatBytes(usage->usedBytes);
        if (v.type == VolumeType::ThinPool)
          extra = fmt::format(", {:.1f}% full, metadata {:.1f}%",
                              100.0 * static_cast<double>(usage->usedBytes) / static_cast<double>(v.sizeBytes),
                              100.0 * static_cast<double>(usage->metadataUsedBytes) /
                                  static_cast<double>(std::max<uint64_t>(1, usage->metadataSizeBytes)));
      } else {
        used = std::string(1, '?');  // not a literal: GCC 12 -O3 warns -Wrestrict on operator=(const char*)
        extra = " (" + usage.error().message + ")";
      }
    }
    VolumeHealth h = pool.health(v);
    std::string pvs = pvsOf(v);
    if (v.type == VolumeType::ThinPool) {
      const VolumeRecord* data = r.findVolumeById(v.dataVolume);
      if (data) pvs = pvsOf(*data);
    }
    out += fmt::format("{:<20} {:<10} {:>12} {:>12} {:<9} {:<10} {}{}{}\n", v.name, volumeTypeName(v.type),
                       formatBytes(v.sizeBytes), used, h.failed ? "FAILED" : h.degraded ? "degraded" : "ok", pvs,
                       layoutText(v, r), extra, v.hidden() ? " [hidden]" : "");
  }
  return out;
}

}  // namespace strata::storage::volume
