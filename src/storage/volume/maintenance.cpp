#include "storage/volume/maintenance.h"

#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <map>

#include <unistd.h>

#include "base/log.h"
#include "storage/sync_io.h"
#include "storage/volume/io_util.h"
#include "storage/volume/leg_io.h"
#include "storage/volume/parity.h"
#include "storage/volume/parity_volume.h"
#include "storage/volume/pool_report.h"
#include "storage/volume/write_intent.h"

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

// Work split into steps run a few at a time: each step's reads go out
// together and several steps overlap, so the legs' queues stay busy.
constexpr size_t kDepth = 4;

struct Pipeline {
  EventLoop& loop;
  size_t count;
  // step(index, slot, done): slot (< kDepth) names the buffers the step may use.
  std::function<void(size_t, size_t, IoCompletion)> step;
  std::string failure;  // set by the step that failed first

  // Returns the first error (0 when every step succeeded).
  int run() {
    size_t next = 0, inFlight = 0;
    int error = 0;
    std::vector<size_t> freeSlots;
    for (size_t slot = kDepth; slot-- > 0;) freeSlots.push_back(slot);
    std::function<void()> launch = [&] {
      while (error == 0 && next < count && !freeSlots.empty()) {
        size_t slot = freeSlots.back();
        freeSlots.pop_back();
        ++inFlight;
        step(next++, slot, [&, slot](int result) {
          --inFlight;
          freeSlots.push_back(slot);
          if (result < 0 && error == 0) error = result;
          launch();
        });
      }
    };
    launch();
    while (inFlight > 0) loop.runOnce(-1);
    return error;
  }
  // For a step: records what failed (the first failure wins) and passes result on.
  void fail(const std::string& what, int result, IoCompletion& done) {
    if (failure.empty()) failure = fmt::format("{}: {}", what, std::strerror(-result));
    done(result);
  }
};

// Per pipeline slot, one step-sized buffer per leg, made on first use.
class StepBuffers {
 public:
  explicit StepBuffers(uint32_t legs) : buffers_(kDepth * legs), legs_(legs) {}
  uint8_t* get(size_t slot, uint32_t leg) {
    auto& b = buffers_[slot * legs_ + leg];
    if (!b) b = makeScratchBuffer(kStep);
    return b.get();
  }

 private:
  std::vector<AlignedBuffer> buffers_;
  uint32_t legs_;
};

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

bool isZero(const uint8_t* p, size_t length) {
  uint64_t any = 0;
  for (size_t i = 0; i + 8 <= length; i += 8) {
    uint64_t word;
    std::memcpy(&word, p + i, 8);
    any |= word;
  }
  return any == 0;  // length is a multiple of 8 (kBlock)
}

// Marks maintenance running on a volume for as long as it lives, after the
// mirror writes that started without the lock have drained; from then on
// they take the lock like RAID 5 writes.
class MaintenanceGuard {
 public:
  MaintenanceGuard(Pool& pool, uint32_t volumeId) : lock_(pool.volumeLock(volumeId)) {
    lock_->beginMaintenance();
    while (lock_->unlockedInFlight() > 0) pool.loop().runOnce(-1);
  }
  ~MaintenanceGuard() { lock_->endMaintenance(); }
  MaintenanceGuard(const MaintenanceGuard&) = delete;
  MaintenanceGuard& operator=(const MaintenanceGuard&) = delete;
  const std::shared_ptr<RangeLock>& shared() const { return lock_; }

 private:
  std::shared_ptr<RangeLock> lock_;
};

// Runs body(done) holding [lo, hi) of the lock.
void underLock(const std::shared_ptr<RangeLock>& lock, uint64_t lo, uint64_t hi,
               std::function<void(IoCompletion)> body, IoCompletion done) {
  lock->acquire(lo, hi, [lock, body = std::move(body), done = std::move(done)](RangeLock::Ticket ticket) mutable {
    body([lock, ticket, done = std::move(done)](int result) {
      lock->release(ticket);
      done(result);
    });
  });
}

// A redundant volume's leg on the replaced PV, to be rebuilt from the others.
struct LegRebuild {
  VolumeRecord volume;
  uint32_t leg;
};

// Rebuilds the legs in kStep steps, several in flight: RAID 5 reads every
// other leg of the step at once and XORs them, under the volume's lock so
// writes in between cannot mix old and new stripes; mirrors copy a healthy copy.
Result<void> rebuildLegs(Pool& pool, const std::vector<LegRebuild>& rebuilds, Meter& meter) {
  struct Step {
    size_t job;
    uint64_t at, n;
  };
  std::vector<Step> steps;
  uint32_t maxLegs = 0;
  for (size_t j = 0; j < rebuilds.size(); ++j) {
    uint64_t legBytes = rebuilds[j].volume.legExtents * pool.extentSize();
    for (uint64_t at = 0; at < legBytes; at += kStep) steps.push_back({j, at, std::min(kStep, legBytes - at)});
    maxLegs = std::max(maxLegs, static_cast<uint32_t>(rebuilds[j].volume.legs.size()));
  }
  StepBuffers buffers(maxLegs);
  // Steps hold the volume's lock, so writes in between cannot mix old and new data.
  std::map<uint32_t, std::unique_ptr<MaintenanceGuard>> guards;
  for (const auto& r : rebuilds)
    if (!guards.count(r.volume.id)) guards[r.volume.id] = std::make_unique<MaintenanceGuard>(pool, r.volume.id);

  Pipeline pipeline{pool.loop(), steps.size(), {}, {}};
  pipeline.step = [&](size_t index, size_t slot, IoCompletion done) {
    const Step step = steps[index];
    const VolumeRecord& v = rebuilds[step.job].volume;
    const uint32_t l = rebuilds[step.job].leg;
    uint8_t* out = buffers.get(slot, l);
    // After the data is in `out`: write it to the new leg.
    auto writeOut = [&pool, &pipeline, &meter, &v, l, step, out](IoCompletion finished) {
      legTransfer(pool, v.legs[l], LegOp::Write, true, step.at, step.n, {iovec{out, step.n}},
                  [&pipeline, &meter, &v, l, step, finished = std::move(finished)](int w) mutable {
                    if (w < 0) return pipeline.fail(fmt::format("writing {} leg {} to the new PV", v.name, l), w, finished);
                    meter.add(step.n);
                    finished(0);
                  });
    };
    if (v.type != VolumeType::Raid5) {
      // A copy from the first readable mirror of the set, the next on error.
      auto tryCopy = std::make_shared<std::function<void(uint32_t, IoCompletion)>>();
      std::weak_ptr<std::function<void(uint32_t, IoCompletion)>> weak = tryCopy;  // no cycle through itself
      *tryCopy = [&pool, &pipeline, &v, l, step, out, writeOut, weak](uint32_t m, IoCompletion finished) {
        uint32_t set = l / v.mirrors;
        for (; m < v.mirrors; ++m) {
          uint32_t o = set * v.mirrors + m;
          if (o == l || !legAvailable(pool, v.legs[o], pool.extentSize(), LegOp::Read, true, step.at, step.n)) continue;
          legTransfer(pool, v.legs[o], LegOp::Read, true, step.at, step.n, {iovec{out, step.n}},
                      [m, writeOut, self = weak.lock(), finished = std::move(finished)](int r) mutable {
                        if (r >= 0) return writeOut(std::move(finished));
                        (*self)(m + 1, std::move(finished));
                      });
          return;
        }
        pipeline.fail(fmt::format("reading a copy of {}", v.name), -EIO, finished);
      };
      return underLock(guards[v.id]->shared(), step.at, step.at + step.n,
                       [tryCopy](IoCompletion finished) { (*tryCopy)(0, std::move(finished)); }, std::move(done));
    }
    underLock(guards[v.id]->shared(), step.at, step.at + step.n, [&, step, slot, l, out, writeOut](IoCompletion unlocked) {
      const VolumeRecord& vol = rebuilds[step.job].volume;
      auto join = IoJoin::make(pool.loop(), [&, step, slot, l, out, writeOut,
                                             unlocked = std::move(unlocked)](int r) mutable {
        const VolumeRecord& v2 = rebuilds[step.job].volume;
        if (r < 0) return pipeline.fail(fmt::format("reading the surviving legs of {}", v2.name), r, unlocked);
        std::vector<const uint8_t*> sources;
        for (uint32_t o = 0; o < v2.legs.size(); ++o)
          if (o != l) sources.push_back(buffers.get(slot, o));
        xorBlocks(sources, out, step.n);
        writeOut(std::move(unlocked));
      });
      for (uint32_t o = 0; o < vol.legs.size(); ++o)
        if (o != l)
          legTransfer(pool, vol.legs[o], LegOp::Read, true, step.at, step.n, {iovec{buffers.get(slot, o), step.n}},
                      join->add());
      join->arm();
    }, std::move(done));
  };
  if (int r = pipeline.run(); r < 0) return Error{pipeline.failure.empty() ? std::strerror(-r) : pipeline.failure};
  return {};
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
    auto fresh = RawImage::open(newPath, {.direct = pool.direct()}, pool.loop());
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
    std::vector<LegRebuild> rebuilds;
    for (const VolumeRecord& v : pool.record().volumes) {
      if (v.legs.empty()) continue;
      bool isLost = std::find(lost.begin(), lost.end(), v.name) != lost.end();
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
        rebuilds.push_back({v, l});
      }
    }
    for (const LegRebuild& r : rebuilds) {
      uint64_t bytes = pool.writeIntent().atRiskBytes(r.volume.id);
      if (bytes == 0 || (!report.atRisk.empty() && report.atRisk.back().starts_with(r.volume.name + ":"))) continue;
      std::string where;
      for (const ByteRange& range : pool.writeIntent().atRiskVolumes().at(r.volume.id))
        where += fmt::format("{}{:#x}-{:#x}", where.empty() ? "" : ", ", range.lo, range.hi);
      report.atRisk.push_back(fmt::format("{}: {} at leg offsets {}", r.volume.name, formatBytes(bytes), where));
      log::warn("pool {}: rebuilding {} from parity that an unclean shutdown left unverified ({}); the rebuilt data "
                "there may be wrong", pool.name(), report.atRisk.back(), pool.pvDisplayName(index));
    }
    if (auto r = rebuildLegs(pool, rebuilds, meter); !r) return r.error();
  }
  if (auto f = flushSync(*target, pool.loop()); !f) return Error{"flushing the new PV: " + f.error().message};
  pool.markRebuilt(index);
  if (auto c = pool.commit(); !c) return c.error();
  // Rebuilt rows are consistent again (whatever they hold): drop their marks.
  std::vector<uint32_t> settled;
  for (const auto& [id, ranges] : pool.writeIntent().atRiskVolumes()) {
    const VolumeRecord* v = pool.record().findVolumeById(id);
    if (!v || !pool.health(*v).degraded) settled.push_back(id);
  }
  for (uint32_t id : settled) pool.writeIntent().releaseAtRisk(id);
  pool.writeIntent().drain();
  report.bytes = total;
  report.seconds = meter.seconds();
  return report;
}

namespace {

// Checks (and with repair, fixes) the leg ranges of a redundant volume in
// kStep steps: mirrors against the first readable copy of each set, RAID 5
// parity against its data (every leg must be readable). Steps hold the
// volume's lock: a write between reading and repairing would otherwise look
// like (and be "repaired" as) a mismatch.
Result<void> scrubRanges(Pool& pool, const VolumeRecord& v, const std::vector<ByteRange>& ranges, bool repair,
                         ScrubReport& report, Meter& meter) {
  uint64_t legBytes = v.legExtents * pool.extentSize();
  uint32_t legs = static_cast<uint32_t>(v.legs.size());
  std::vector<bool> readable(legs);
  uint32_t readers = 0;
  for (uint32_t l = 0; l < legs; ++l) {
    readable[l] = legAvailable(pool, v.legs[l], pool.extentSize(), LegOp::Read, true, 0, legBytes);
    readers += readable[l];
  }
  if (v.type == VolumeType::Raid5 && readers < legs) return Error{fmt::format("{} has a leg missing", v.name)};
  struct Step {
    uint64_t at, n;
  };
  std::vector<Step> steps;
  for (const ByteRange& r : ranges)
    for (uint64_t at = r.lo; at < std::min(r.hi, legBytes); at += kStep) steps.push_back({at, std::min({kStep, r.hi - at, legBytes - at})});
  MaintenanceGuard guard(pool, v.id);
  StepBuffers buffers(legs + 1);  // the extra one holds a RAID 5 step's XOR of every leg
  Pipeline pipeline{pool.loop(), steps.size(), {}, {}};

  // Compares a step's blocks; repairs go out as members of `repairs`.
  auto checkStep = [&](uint64_t at, uint64_t n, size_t slot, IoJoin& repairs) {
    auto copy = [&](uint32_t l, uint64_t b) { return buffers.get(slot, l) + b; };
    auto repairWrite = [&](uint32_t l, uint64_t b, uint8_t* data) {
      legTransfer(pool, v.legs[l], LegOp::Write, true, at + b, kBlock, {iovec{data, kBlock}}, repairs.add());
      ++report.repaired;
    };
    uint8_t* sum = buffers.get(slot, legs);
    if (v.type == VolumeType::Raid5) {
      // Data XOR parity is zero wherever parity is right: one pass over the step.
      std::vector<const uint8_t*> sources;
      for (uint32_t l = 0; l < legs; ++l) sources.push_back(copy(l, 0));
      xorBlocks(sources, sum, n);
    }
    for (uint64_t b = 0; b < n; b += kBlock) {
      if (v.type == VolumeType::Raid5) {
        if (isZero(sum + b, kBlock)) continue;
        ++report.parityMismatches;
        if (!repair) continue;
        uint32_t parity = ParityVolume::parityLeg(legs, (at + b) / v.stripeSize);
        std::vector<const uint8_t*> data;
        for (uint32_t l = 0; l < legs; ++l)
          if (l != parity) data.push_back(copy(l, b));
        xorBlocks(data, copy(parity, b), kBlock);
        repairWrite(parity, b, copy(parity, b));
        continue;
      }
      for (uint32_t set = 0; set < legs / v.mirrors; ++set) {
        int reference = -1;  // the set's first readable copy
        for (uint32_t m = 0; m < v.mirrors; ++m) {
          uint32_t l = set * v.mirrors + m;
          if (!readable[l]) continue;
          if (reference < 0) {
            reference = static_cast<int>(l);
            continue;
          }
          uint8_t* good = copy(static_cast<uint32_t>(reference), b);
          if (std::memcmp(copy(l, b), good, kBlock) == 0) continue;
          ++report.mirrorMismatches;
          if (repair) repairWrite(l, b, good);
        }
      }
    }
  };
  pipeline.step = [&](size_t index, size_t slot, IoCompletion done) {
    const Step step = steps[index];
    // Reads every readable leg of the step at once, then checks and repairs.
    auto body = [&, step, slot](IoCompletion finished) {
      auto join = IoJoin::make(pool.loop(), [&, step, slot, finished = std::move(finished)](int r) mutable {
        if (r < 0) return pipeline.fail(fmt::format("scrub: reading {}", v.name), r, finished);
        auto repairs = IoJoin::make(pool.loop(), [&, step, finished = std::move(finished)](int w) mutable {
          if (w < 0) return pipeline.fail(fmt::format("scrub: repairing {}", v.name), w, finished);
          report.bytesChecked += step.n * readers;
          meter.add(step.n * readers);
          finished(0);
        });
        checkStep(step.at, step.n, slot, *repairs);
        repairs->arm();
      });
      for (uint32_t l = 0; l < legs; ++l)
        if (readable[l])
          legTransfer(pool, v.legs[l], LegOp::Read, true, step.at, step.n, {iovec{buffers.get(slot, l), step.n}},
                      join->add());
      join->arm();
    };
    underLock(guard.shared(), step.at, step.at + step.n, body, std::move(done));
  };
  if (int r = pipeline.run(); r < 0) return Error{pipeline.failure.empty() ? std::strerror(-r) : pipeline.failure};
  return {};
}

Result<void> flushPresentPvs(Pool& pool) {
  for (uint32_t pv = 0; pv < pool.pvCount(); ++pv)
    if (pool.pvPresent(pv))
      if (auto f = flushSync(*pool.pvImage(pv), pool.loop()); !f) return f.error();
  return {};
}

}  // namespace

Result<ScrubReport> scrubPool(Pool& pool, bool repair, const ProgressCallback& progress) {
  if (repair && pool.readOnly()) return Error{fmt::format("pool {} is open read-only; scrub without repair", pool.name())};
  ScrubReport report;
  uint64_t extent = pool.extentSize();
  uint64_t total = 0;
  std::vector<const VolumeRecord*> volumes;
  for (const VolumeRecord& v : pool.record().volumes) {
    if (!isRedundant(v.type)) continue;
    VolumeHealth h = pool.health(v);
    if (h.degraded || h.failed) {
      report.skipped.push_back(fmt::format("{} ({})", v.name, h.failed ? "failed" : "degraded"));
      continue;
    }
    volumes.push_back(&v);
    total += v.legExtents * extent * v.legs.size();
  }
  Meter meter(total, progress);
  for (const VolumeRecord* volume : volumes) {
    const VolumeRecord v = *volume;  // a copy: a PV failing mid-scrub commits the pool record
    if (auto r = scrubRanges(pool, v, {{0, v.legExtents * extent}}, repair, report, meter); !r) return r.error();
  }
  if (report.repaired > 0)
    if (auto f = flushPresentPvs(pool); !f) return f.error();
  return report;
}

std::vector<ByteRange> dirtyLegRanges(const Pool& pool, const VolumeRecord& v) {
  std::vector<ByteRange> out;
  uint64_t extent = pool.extentSize();
  for (const Leg& leg : v.legs) {
    uint64_t legStart = 0;
    for (const ExtentRun& run : leg.runs) {
      uint64_t pvLo = kPvDataStart + run.start * extent, pvHi = pvLo + run.count * extent;
      for (const ByteRange& d : pool.writeIntent().dirtyRanges(run.pv)) {
        uint64_t lo = std::max(d.lo, pvLo), hi = std::min(d.hi, pvHi);
        if (lo < hi) out.push_back({legStart + lo - pvLo, legStart + hi - pvLo});
      }
      legStart += run.count * extent;
    }
  }
  std::sort(out.begin(), out.end(), [](const ByteRange& a, const ByteRange& b) { return a.lo < b.lo; });
  std::vector<ByteRange> merged;
  for (const ByteRange& r : out) {
    if (!merged.empty() && r.lo <= merged.back().hi)
      merged.back().hi = std::max(merged.back().hi, r.hi);
    else
      merged.push_back(r);
  }
  return merged;
}

Result<void> resyncAfterUncleanShutdown(Pool& pool) {
  WriteIntent& intent = pool.writeIntent();
  if (!intent.anyDirty()) return intent.settle();
  struct Job {
    VolumeRecord volume;
    std::vector<ByteRange> ranges;
  };
  std::vector<Job> jobs;
  uint64_t total = 0, dirty = 0;
  for (const VolumeRecord& v : pool.record().volumes) {
    if (!isRedundant(v.type)) continue;
    auto ranges = dirtyLegRanges(pool, v);
    if (ranges.empty()) continue;
    uint64_t bytes = 0;
    for (const ByteRange& r : ranges) bytes += r.hi - r.lo;
    VolumeHealth h = pool.health(v);
    if (v.type == VolumeType::Raid5 && (h.degraded || h.failed)) {
      // Parity of these rows may not match their data, and a leg is gone:
      // reconstructing it from them could return wrong data. Keep the bits.
      log::error("pool {}: {} of raid5 volume {} were being written at an unclean shutdown while a leg is missing: "
                 "that leg's data there cannot be reconstructed reliably; reads needing it fail (EIO) until "
                 "`strata pool replace` rebuilds the leg",
                 pool.name(), formatBytes(bytes), v.name);
      intent.setAtRisk(v.id, std::move(ranges));
      continue;
    }
    dirty += bytes;
    total += bytes * v.legs.size();
    jobs.push_back({v, std::move(ranges)});
  }
  if (!jobs.empty())
    log::warn("pool {}: unclean shutdown: resyncing {} of {} redundant volume(s)", pool.name(), formatBytes(dirty),
              jobs.size());
  ScrubReport report;
  uint64_t nextReport = total / 4;
  ProgressCallback progress = [&](const MaintenanceProgress& p) {
    if (p.doneBytes < nextReport || p.doneBytes == p.totalBytes) return;
    log::info("pool {}: resync {:.0f}% ({:.1f} MB/s)", pool.name(), 100.0 * static_cast<double>(p.doneBytes) /
              static_cast<double>(p.totalBytes), p.bytesPerSecond / 1e6);
    nextReport += total / 4;
  };
  Meter meter(total, progress);
  for (const Job& job : jobs) {
    if (auto r = scrubRanges(pool, job.volume, job.ranges, true, report, meter); !r) {
      log::error("pool {}: resyncing volume {}: {}", pool.name(), job.volume.name, r.error().message);
      if (job.volume.type == VolumeType::Raid5) intent.setAtRisk(job.volume.id, job.ranges);
    }
  }
  if (auto f = flushPresentPvs(pool); !f) return f.error();
  if (!jobs.empty())
    log::info("pool {}: resync done in {:.2f} s: {} parity and {} mirror blocks rewritten", pool.name(),
              meter.seconds(), report.parityMismatches, report.mirrorMismatches);
  return intent.settle();
}

}  // namespace strata::storage::volume
