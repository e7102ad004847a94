#include "storage/volume/maintenance.h"

#include <fmt/core.h>

#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>

#include <unistd.h>

#include "storage/sync_io.h"
#include "storage/volume/io_util.h"
#include "storage/volume/leg_io.h"
#include "storage/volume/parity.h"
#include "storage/volume/parity_volume.h"

namespace strata::storage::volume {

namespace {

constexpr uint64_t kStep = 1 << 20;
constexpr uint64_t kBlock = 4096;

// Resolves symlinks when the file exists; a missing file still gets an absolute path.
std::string canonicalPath(const std::string& path) {
  char buffer[PATH_MAX];
  if (::realpath(path.c_str(), buffer)) return buffer;
  if (!path.empty() && path[0] != '/' && ::getcwd(buffer, sizeof buffer)) return std::string(buffer) + "/" + path;
  return path;
}

int legSync(Pool& pool, const Leg& leg, LegOp op, uint64_t offset, uint64_t length, uint8_t* buffer) {
  return runUntilComplete(pool.loop(), [&](IoCompletion done) {
    legTransfer(pool, leg, op, true, offset, length, {iovec{buffer, length}}, std::move(done));
  });
}

Error ioError(const std::string& what, int result) { return Error{fmt::format("{}: {}", what, std::strerror(-result))}; }

class Meter {
 public:
  Meter(uint64_t total, const ProgressCallback& callback) : total_(total), callback_(callback) {}
  void add(uint64_t bytes) {
    done_ += bytes;
    if (callback_) callback_({done_, total_, rate()});
  }
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  double rate() const { return seconds() > 0 ? static_cast<double>(done_) / seconds() : 0; }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  uint64_t done_ = 0;
  uint64_t total_;
  const ProgressCallback& callback_;
};

bool legOnPv(const Leg& leg, uint32_t pv) {
  for (const auto& run : leg.runs)
    if (run.pv == pv) return true;
  return false;
}

}  // namespace

Result<uint32_t> findPhysicalVolume(const Pool& pool, const std::string& which) {
  const auto& pvs = pool.record().pvs;
  std::string digits = which.size() > 1 && which[0] == '#' ? which.substr(1) : which;
  if (!digits.empty() && digits.find_first_not_of("0123456789") == std::string::npos && digits.size() < 6) {
    uint32_t index = static_cast<uint32_t>(std::stoul(digits));
    if (index < pvs.size()) return index;
  }
  for (uint32_t i = 0; i < pvs.size(); ++i)
    if (formatUuid(pvs[i].uuid) == which) return i;
  std::string wanted = canonicalPath(which);
  for (uint32_t i = 0; i < pvs.size(); ++i)
    if (!pvs[i].lastPath.empty() && (pvs[i].lastPath == which || canonicalPath(pvs[i].lastPath) == wanted)) return i;
  return Error{fmt::format("pool {} has no physical volume '{}' (see strata pool status)", pool.name(), which)};
}

Result<ReplaceReport> replacePhysicalVolume(Pool& pool, const std::string& oldPv, const std::string& newPath,
                                            bool force, const ProgressCallback& progress) {
  if (pool.readOnly()) return Error{fmt::format("pool {} is open read-only", pool.name())};
  auto found = findPhysicalVolume(pool, oldPv);
  if (!found) return found.error();
  uint32_t index = *found;
  ReplaceReport report;
  report.pv = index;
  bool healthy = pool.pvReadable(index);
  // Present but marked failed: RAID legs on it are stale, yet the only copy of
  // non-redundant volumes is still there.
  bool present = pool.pvPresent(index);
  bool samePath = canonicalPath(pool.record().pvs[index].lastPath) == canonicalPath(newPath);
  uint64_t extent = pool.extentSize();

  // What the PV holds, and whether it can be recovered.
  std::vector<std::string> lost;
  uint64_t total = 0;
  for (const VolumeRecord& v : pool.record().volumes) {
    bool touches = false;
    for (const Leg& leg : v.legs)
      for (const ExtentRun& run : leg.runs)
        if (run.pv == index) {
          touches = true;
          total += run.count * extent;
        }
    if (!touches || healthy) continue;
    bool recoverable = isRedundant(v.type);
    if (recoverable) {
      // Every other member it needs must be readable.
      for (uint32_t l = 0; l < v.legs.size(); ++l) {
        if (!legOnPv(v.legs[l], index)) continue;
        if (v.type == VolumeType::Raid5) {
          for (uint32_t o = 0; o < v.legs.size(); ++o)
            if (o != l && !legAvailable(pool, v.legs[o], extent, LegOp::Read, true, 0, v.legExtents * extent))
              recoverable = false;
        } else {
          uint32_t set = l / v.mirrors;
          bool source = false;
          for (uint32_t m = 0; m < v.mirrors; ++m) {
            uint32_t o = set * v.mirrors + m;
            if (o != l && legAvailable(pool, v.legs[o], extent, LegOp::Read, true, 0, v.legExtents * extent)) source = true;
          }
          recoverable = recoverable && source;
        }
      }
    }
    if (!recoverable && !(present && !isRedundant(v.type))) lost.push_back(v.name);
  }

  if (!lost.empty() && !force) {
    std::string names;
    for (const auto& n : lost) names += (names.empty() ? "" : ", ") + n;
    return Error{fmt::format("PV {} cannot be rebuilt for: {} (no redundancy left); pass --force to replace it anyway "
                             "(their extents on it will read as zeroes)",
                             pool.pvDisplayName(index), names)};
  }

  Meter meter(total, progress);
  auto buffer = makeAlignedBuffer(kStep);
  std::unique_ptr<RawImage> previous;
  RawImage* target = nullptr;

  if (healthy) {
    // The old PV still works: copy its extents verbatim before the pool
    // switches over, so an interrupted copy leaves the pool on the old PV.
    if (samePath) return Error{fmt::format("PV {} is healthy; replace it with a different device", pool.pvDisplayName(index))};
    auto fresh = RawImage::open(newPath, {}, pool.loop());
    if (!fresh) return fresh.error();
    uint64_t needed = kPvDataStart + pool.record().pvs[index].extentCount * extent;
    if ((*fresh)->sizeBytes() < needed)
      return Error{fmt::format("{}: {} bytes is smaller than the {} bytes PV {} holds", newPath, (*fresh)->sizeBytes(),
                               needed, pool.pvDisplayName(index))};
    report.copied = true;
    for (const VolumeRecord& v : pool.record().volumes)
      for (const Leg& leg : v.legs)
        for (const ExtentRun& run : leg.runs) {
          if (run.pv != index) continue;
          uint64_t base = kPvDataStart + run.start * extent, bytes = run.count * extent;
          for (uint64_t at = 0; at < bytes; at += kStep) {
            uint64_t n = std::min(kStep, bytes - at);
            if (auto r = readSync(*pool.pvImage(index), pool.loop(), base + at, buffer.get(), n); !r)
              return Error{"reading the old PV: " + r.error().message};
            if (auto w = writeSync(**fresh, pool.loop(), base + at, buffer.get(), n); !w)
              return Error{"writing the new PV: " + w.error().message};
            meter.add(n);
          }
        }
    if (auto f = flushSync(**fresh, pool.loop()); !f) return Error{"flushing the new PV: " + f.error().message};
    fresh->reset();
    if (auto attached = pool.attachReplacement(index, newPath, nullptr); !attached) return attached.error();
    target = pool.pvImage(index);
  } else {
    if (auto attached = pool.attachReplacement(index, newPath, &previous); !attached) return attached.error();
    target = pool.pvImage(index);
    for (const VolumeRecord& v : pool.record().volumes) {
      if (v.legs.empty()) continue;
      bool isLost = std::find(lost.begin(), lost.end(), v.name) != lost.end();
      uint64_t legBytes = v.legExtents * extent;
      for (uint32_t l = 0; l < v.legs.size(); ++l) {
        const Leg& leg = v.legs[l];
        if (!legOnPv(leg, index)) continue;
        if (!isRedundant(v.type) && !isLost) {
          // Its only copy is on the old device: in place when re-adding it, else copied.
          for (const auto& run : leg.runs) {
            if (run.pv != index) continue;
            uint64_t base = kPvDataStart + run.start * extent, bytes = run.count * extent;
            for (uint64_t at = 0; at < bytes && !samePath && previous; at += kStep) {
              uint64_t n = std::min(kStep, bytes - at);
              if (auto r = readSync(*previous, pool.loop(), base + at, buffer.get(), n); !r)
                return Error{"reading the old PV: " + r.error().message};
              if (auto w = writeSync(*target, pool.loop(), base + at, buffer.get(), n); !w)
                return Error{"writing the new PV: " + w.error().message};
            }
            meter.add(bytes);
          }
          continue;
        }
        if (isLost) {
          std::vector<ExtentRun> runs;
          for (const auto& run : leg.runs)
            if (run.pv == index) runs.push_back(run);
          if (auto z = pool.zeroRuns(runs); !z) return z.error();
          for (const auto& run : runs) meter.add(run.count * extent);
          report.zeroedVolumes.push_back(v.name);
          continue;
        }
        std::vector<AlignedBuffer> others;
        for (uint64_t at = 0; at < legBytes; at += kStep) {
          uint64_t n = std::min(kStep, legBytes - at);
          if (v.type == VolumeType::Raid5) {
            others.resize(v.legs.size());
            std::vector<const uint8_t*> sources;
            for (uint32_t o = 0; o < v.legs.size(); ++o) {
              if (o == l) continue;
              if (!others[o]) others[o] = makeAlignedBuffer(kStep);
              int r = legSync(pool, v.legs[o], LegOp::Read, at, n, others[o].get());
              if (r < 0) return ioError(fmt::format("reading {} leg {}", v.name, o), r);
              sources.push_back(others[o].get());
            }
            xorBlocks(sources, buffer.get(), n);
          } else {
            uint32_t set = l / v.mirrors;
            int r = -EIO;
            for (uint32_t m = 0; m < v.mirrors && r < 0; ++m) {
              uint32_t o = set * v.mirrors + m;
              if (o == l || !legAvailable(pool, v.legs[o], extent, LegOp::Read, true, at, n)) continue;
              r = legSync(pool, v.legs[o], LegOp::Read, at, n, buffer.get());
            }
            if (r < 0) return ioError(fmt::format("reading a copy of {}", v.name), r);
          }
          int w = legSync(pool, leg, LegOp::Write, at, n, buffer.get());
          if (w < 0) return ioError(fmt::format("writing {} leg {} to the new PV", v.name, l), w);
          meter.add(n);
        }
      }
    }
  }
  if (auto f = flushSync(*target, pool.loop()); !f) return Error{"flushing the new PV: " + f.error().message};
  pool.markRebuilt(index);
  if (auto c = pool.commit(); !c) return c.error();
  report.bytes = total;
  report.seconds = meter.seconds();
  return report;
}

Result<ScrubReport> scrubPool(Pool& pool, bool repair, const ProgressCallback& progress) {
  if (repair && pool.readOnly()) return Error{fmt::format("pool {} is open read-only; scrub without repair", pool.name())};
  ScrubReport report;
  uint64_t extent = pool.extentSize();
  uint64_t total = 0;
  for (const VolumeRecord& v : pool.record().volumes)
    if (isRedundant(v.type)) total += v.legExtents * extent * v.legs.size();
  Meter meter(total, progress);

  for (const VolumeRecord& v : pool.record().volumes) {
    if (!isRedundant(v.type)) continue;
    VolumeHealth h = pool.health(v);
    if (h.degraded || h.failed) {
      report.skipped.push_back(fmt::format("{} ({})", v.name, h.failed ? "failed" : "degraded"));
      continue;
    }
    uint64_t legBytes = v.legExtents * extent;
    uint32_t legs = static_cast<uint32_t>(v.legs.size());
    std::vector<AlignedBuffer> copies;
    for (uint32_t l = 0; l < legs; ++l) copies.push_back(makeAlignedBuffer(kStep));
    auto scratch = makeAlignedBuffer(kBlock);
    for (uint64_t at = 0; at < legBytes; at += kStep) {
      uint64_t n = std::min(kStep, legBytes - at);
      for (uint32_t l = 0; l < legs; ++l) {
        int r = legSync(pool, v.legs[l], LegOp::Read, at, n, copies[l].get());
        if (r < 0) return ioError(fmt::format("scrub: reading {} leg {}", v.name, l), r);
      }
      for (uint64_t b = 0; b < n; b += kBlock) {
        if (v.type == VolumeType::Raid5) {
          std::vector<const uint8_t*> sources;
          for (uint32_t l = 0; l < legs; ++l) sources.push_back(copies[l].get() + b);
          xorBlocks(sources, scratch.get(), kBlock);
          bool zero = true;
          for (uint64_t i = 0; i < kBlock && zero; ++i) zero = scratch[i] == 0;
          if (zero) continue;
          ++report.parityMismatches;
          if (!repair) continue;
          uint64_t row = (at + b) / v.stripeSize;
          uint32_t parity = ParityVolume::parityLeg(legs, row);
          std::vector<const uint8_t*> data;
          for (uint32_t l = 0; l < legs; ++l)
            if (l != parity) data.push_back(copies[l].get() + b);
          xorBlocks(data, copies[parity].get() + b, kBlock);
          int w = legSync(pool, v.legs[parity], LegOp::Write, at + b, kBlock, copies[parity].get() + b);
          if (w < 0) return ioError(fmt::format("scrub: repairing parity of {}", v.name), w);
          ++report.repaired;
        } else {
          for (uint32_t l = 0; l < legs; ++l) {
            uint32_t first = (l / v.mirrors) * v.mirrors;  // the set's first copy is the reference
            if (l == first || std::memcmp(copies[l].get() + b, copies[first].get() + b, kBlock) == 0) continue;
            ++report.mirrorMismatches;
            if (!repair) continue;
            int w = legSync(pool, v.legs[l], LegOp::Write, at + b, kBlock, copies[first].get() + b);
            if (w < 0) return ioError(fmt::format("scrub: repairing {} leg {}", v.name, l), w);
            ++report.repaired;
          }
        }
      }
      report.bytesChecked += n * legs;
      meter.add(n * legs);
    }
  }
  if (report.repaired > 0) {
    for (uint32_t pv = 0; pv < pool.pvCount(); ++pv)
      if (pool.pvPresent(pv))
        if (auto f = flushSync(*pool.pvImage(pv), pool.loop()); !f) return f.error();
  }
  return report;
}

}  // namespace strata::storage::volume
