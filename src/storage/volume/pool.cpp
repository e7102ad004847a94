#include "storage/volume/pool.h"

#include <sys/file.h>
#include <unistd.h>

#include <fmt/core.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <set>

#include "base/log.h"
#include "storage/sync_io.h"
#include "storage/volume/extent_allocator.h"
#include "storage/volume/io_util.h"
#include "storage/volume/leg_io.h"
#include "storage/volume/legged_volume.h"
#include "storage/volume/maintenance.h"
#include "storage/volume/parity_volume.h"
#include "storage/volume/thin_pool.h"
#include "storage/volume/thin_volume.h"
#include "storage/volume/write_intent.h"

namespace strata::storage::volume {

namespace {

uint64_t divideRoundUp(uint64_t a, uint64_t b) { return a / b + (a % b != 0); }

bool isPowerOfTwo(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

std::string canonical(const std::string& path) {
  char buffer[PATH_MAX];
  return ::realpath(path.c_str(), buffer) ? std::string(buffer) : path;
}

Result<PvLabel> readLabel(RawImage& image, EventLoop& loop) {
  auto buffer = makeAlignedBuffer(kPvLabelSize);
  if (image.sizeBytes() < kPvLabelSize) return Error{"too small to be a physical volume"};
  auto read = readSync(image, loop, 0, buffer.get(), kPvLabelSize);
  if (!read) return read.error();
  return decodeLabel(buffer.get(), kPvLabelSize);
}

// The thin metadata volume for a data volume of dataBytes: room for a
// checkpoint of four mappings per data chunk, twice, plus the journal.
uint64_t defaultThinMetadataSize(uint64_t dataBytes, uint32_t chunkSize) {
  uint64_t chunks = dataBytes / chunkSize;
  return (4ull << 20) + chunks * 64;
}

}  // namespace

Pool::Pool(EventLoop& loop, PoolOpenOptions options) : loop_(loop), options_(options) {}

Result<void> Pool::makeRing() {
  // One ring for every PV: a request fanned out over several PVs, and the
  // requests completions resubmit, reach the kernel in one batch per loop
  // iteration instead of one io_uring_enter (and one eventfd wakeup) per PV.
  auto ring = makeImageRing(loop_, options_.direct, 256);
  if (!ring) return ring.error();
  ring_ = std::move(*ring);
  return {};
}

Pool::~Pool() {
  // A clean close: nothing needs a resync at the next open.
  if (intent_) intent_->closeClean();
}

std::vector<std::string> Pool::presentPaths() const {
  std::vector<std::string> paths;
  for (const auto& pv : pvs_)
    if (pv.image) paths.push_back(pv.path);
  return paths;
}

bool Pool::pvPresent(uint32_t pv) const { return pv < pvs_.size() && pvs_[pv].image && !pvs_[pv].failedAtRuntime; }
bool Pool::pvReadable(uint32_t pv) const { return pvPresent(pv) && record_.pvs[pv].state == PvState::Active; }
bool Pool::pvWritable(uint32_t pv) const { return pvPresent(pv) && record_.pvs[pv].state != PvState::Failed; }
RawImage* Pool::pvImage(uint32_t pv) const { return pv < pvs_.size() ? pvs_[pv].image.get() : nullptr; }

std::string Pool::pvDisplayName(uint32_t pv) const {
  if (pv >= record_.pvs.size()) return fmt::format("#{}", pv);
  const std::string& path = pv < pvs_.size() && !pvs_[pv].path.empty() ? pvs_[pv].path : record_.pvs[pv].lastPath;
  return fmt::format("#{} ({})", pv, path.empty() ? formatUuid(record_.pvs[pv].uuid) : path);
}

IoCompletion Pool::reportingFailures(uint32_t pv, IoCompletion done) {
  PvCompletion* node = pvCompletions_.take();
  node->pv = pv;
  node->done = std::move(done);
  return [this, node](int result) {
    IoCompletion done = std::move(node->done);
    uint32_t failed = node->pv;
    pvCompletions_.give(node);
    if (result < 0 && result != -EINVAL) reportPvFailure(failed, result);
    done(result);
  };
}

void Pool::reportPvFailure(uint32_t pv, int error) {
  if (pv >= pvs_.size() || pvs_[pv].failedAtRuntime) return;
  pvs_[pv].failedAtRuntime = true;
  log::error("pool {}: PV {} failed ({}); redundant volumes continue degraded until `strata pool replace`", name(),
             pvDisplayName(pv), std::strerror(-error));
  if (record_.pvs[pv].state == PvState::Failed) return;
  record_.pvs[pv].state = PvState::Failed;
  if (!readOnly())
    commitAsync([poolName = name()](int result) {
      if (result < 0) log::error("pool {}: could not record the PV failure: {}", poolName, std::strerror(-result));
    });
}

VolumeHealth Pool::health(const VolumeRecord& v) const {
  VolumeHealth h;
  auto legReadable = [&](const Leg& leg) {
    for (const ExtentRun& run : leg.runs)
      if (!pvReadable(run.pv)) return false;
    return true;
  };
  switch (v.type) {
    case VolumeType::Linear:
    case VolumeType::Striped:
      for (const Leg& leg : v.legs)
        for (const ExtentRun& run : leg.runs)
          if (!pvPresent(run.pv) || record_.pvs[run.pv].state == PvState::Rebuilding) h.failed = true;
      break;
    case VolumeType::Mirror:
    case VolumeType::Raid10: {
      uint32_t sets = dataLegCount(v);
      for (uint32_t s = 0; s < sets; ++s) {
        uint32_t good = 0;
        for (uint32_t m = 0; m < v.mirrors; ++m) good += legReadable(v.legs[s * v.mirrors + m]);
        if (good == 0) h.failed = true;
        if (good < v.mirrors) h.degraded = true;
      }
      break;
    }
    case VolumeType::Raid5: {
      uint32_t bad = 0;
      for (const Leg& leg : v.legs) bad += !legReadable(leg);
      h.degraded = bad == 1;
      h.failed = bad > 1;
      break;
    }
    case VolumeType::ThinPool:
    case VolumeType::Thin: {
      const VolumeRecord* thinPool = v.type == VolumeType::Thin ? record_.findVolumeById(v.thinPool) : &v;
      if (!thinPool) return {false, true};
      for (uint32_t id : {thinPool->dataVolume, thinPool->metaVolume}) {
        const VolumeRecord* sub = record_.findVolumeById(id);
        if (!sub) return {false, true};
        VolumeHealth s = health(*sub);
        h.degraded |= s.degraded;
        h.failed |= s.failed;
      }
      break;
    }
  }
  if (h.failed) h.degraded = false;
  return h;
}

Result<void> Pool::lockPvs() {
  for (auto& pv : pvs_) {
    if (!pv.image) continue;
    int waited = 0;
    while (::flock(pv.image->fd(), LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK && waited < options_.lockWaitMs) {
      ::usleep(10000);
      waited += 10;
    }
    if (::flock(pv.image->fd(), LOCK_EX | LOCK_NB) != 0)
      return Error{fmt::format("{}: in use by another process (a running VM or strata command holds pool {})", pv.path,
                               record_.name.empty() ? "?" : record_.name)};
  }
  return {};
}

Result<void> Pool::labelPv(uint32_t index, RawImage& image) {
  PvLabel label{record_.uuid, record_.pvs[index].uuid, index, image.sizeBytes(), record_.extentSize};
  auto bytes = encodeLabel(label);
  auto buffer = makeAlignedBuffer(bytes.size());
  std::memcpy(buffer.get(), bytes.data(), bytes.size());
  if (auto w = writeSync(image, loop_, 0, buffer.get(), bytes.size()); !w) return Error{image.path() + ": " + w.error().message};
  // Old metadata or bitmaps from an earlier life of this device must not be mistaken for ours.
  if (auto z = writeZeroesSync(image, loop_, kPvSlotOffset[0], kPvDataStart - kPvSlotOffset[0]); !z)
    return Error{image.path() + ": " + z.error().message};
  if (auto f = flushSync(image, loop_); !f) return Error{image.path() + ": " + f.error().message};
  return {};
}

static Result<std::unique_ptr<RawImage>> openPvForLabel(const std::string& path, uint64_t extentSize, bool force,
                                                        bool direct, std::shared_ptr<IoRing> ring, EventLoop& loop) {
  auto image = RawImage::open(path, {.readOnly = false, .direct = direct, .ring = std::move(ring)}, loop);
  if (!image) return image.error();
  uint64_t minimum = kPvDataStart + extentSize;
  if ((*image)->sizeBytes() < minimum)
    return Error{fmt::format("{}: {} bytes is too small for a physical volume (at least {} bytes with {} MiB extents)",
                             path, (*image)->sizeBytes(), minimum, extentSize >> 20)};
  auto label = readLabel(**image, loop);
  if (label.ok() && !force)
    return Error{fmt::format("{}: already a physical volume of pool {} (pass --force to overwrite it)", path,
                             formatUuid(label->poolUuid))};
  return image;
}

Result<std::shared_ptr<Pool>> Pool::create(const std::string& name, const std::vector<std::string>& pvPaths,
                                           const PoolCreateOptions& options, EventLoop& loop) {
  if (auto n = checkName("pool", name); !n) return n.error();
  if (pvPaths.empty()) return Error{"a pool needs at least one physical volume"};
  if (pvPaths.size() > kPoolMaxPvs) return Error{fmt::format("a pool holds at most {} physical volumes", kPoolMaxPvs)};
  if (!isPowerOfTwo(options.extentSize) || options.extentSize < (64 << 10) || options.extentSize > (1ull << 30))
    return Error{fmt::format("extent size {} must be a power of two from 64 KiB to 1 GiB", options.extentSize)};
  std::set<std::string> seen;
  for (const auto& path : pvPaths)
    if (!seen.insert(canonical(path)).second) return Error{fmt::format("{} is listed twice", path)};

  if (auto r = checkIntentRegionBytes(options.intentRegionBytes); !r) return r.error();
  std::shared_ptr<Pool> pool(new Pool(loop, PoolOpenOptions{.intentRegionBytes = options.intentRegionBytes}));
  if (auto r = pool->makeRing(); !r) return r.error();
  pool->record_.uuid = randomUuid();
  pool->record_.name = name;
  pool->record_.extentSize = options.extentSize;
  for (const auto& path : pvPaths) {
    auto image = openPvForLabel(path, options.extentSize, options.force, false, pool->ring_, loop);
    if (!image) return image.error();
    PvRecord pv;
    pv.uuid = randomUuid();
    pv.sizeBytes = (*image)->sizeBytes();
    pv.extentCount = (pv.sizeBytes - kPvDataStart) / options.extentSize;
    pv.lastPath = path;
    pool->record_.pvs.push_back(pv);
    pool->pvs_.push_back({path, std::move(*image), false});
  }
  if (auto locked = pool->lockPvs(); !locked) return locked.error();
  for (uint32_t i = 0; i < pool->pvs_.size(); ++i)
    if (auto l = pool->labelPv(i, *pool->pvs_[i].image); !l) return l.error();
  if (auto c = pool->commit(); !c) return c.error();
  auto intent = WriteIntent::load(*pool, std::chrono::milliseconds(pool->options_.intentIdleMs));
  if (!intent) return intent.error();
  pool->intent_ = std::move(*intent);
  if (auto s = pool->intent_->settle(); !s) return s.error();
  return pool;
}

Result<std::shared_ptr<Pool>> Pool::open(const std::vector<std::string>& pvPaths, const PoolOpenOptions& options,
                                         EventLoop& loop) {
  if (pvPaths.empty()) return Error{"no physical volumes given"};
  if (auto r = checkIntentRegionBytes(options.intentRegionBytes); !r) return r.error();
  std::shared_ptr<Pool> pool(new Pool(loop, options));
  if (auto r = pool->makeRing(); !r) return r.error();
  struct Found {
    std::string path;
    std::unique_ptr<RawImage> image;
    PvLabel label;
    uint64_t newestSequence = 0;
  };
  std::vector<Found> found;
  std::vector<std::string> problems;
  for (const auto& path : pvPaths) {
    auto image =
        RawImage::open(path, {.readOnly = options.readOnly, .direct = options.direct, .ring = pool->ring_}, loop);
    if (!image) {
      log::warn("{}; treating that physical volume as missing", image.error().message);
      continue;
    }
    auto label = readLabel(**image, loop);
    if (!label) return Error{path + ": " + label.error().message};
    found.push_back({path, std::move(*image), *label, 0});
  }
  if (found.empty()) return Error{"none of the pool's physical volumes could be opened"};
  for (const auto& f : found)
    if (f.label.poolUuid != found[0].label.poolUuid)
      return Error{fmt::format("{} belongs to pool {}, but {} to pool {}", f.path, formatUuid(f.label.poolUuid),
                               found[0].path, formatUuid(found[0].label.poolUuid))};

  bool haveBest = false;
  auto slot = makeAlignedBuffer(kPvSlotSize);
  for (auto& f : found) {
    for (int s = 0; s < 2; ++s) {
      if (f.image->sizeBytes() < kPvSlotOffset[s] + kPvSlotSize) continue;
      if (auto r = readSync(*f.image, loop, kPvSlotOffset[s], slot.get(), kPvSlotSize); !r) {
        problems.push_back(fmt::format("{} slot {}: {}", f.path, s ? 'B' : 'A', r.error().message));
        continue;
      }
      auto decoded = decodeMetadataSlot(slot.get(), kPvSlotSize);
      if (!decoded) {
        problems.push_back(fmt::format("{} slot {}: {}", f.path, s ? 'B' : 'A', decoded.error().message));
        continue;
      }
      if (decoded->uuid != f.label.poolUuid) continue;
      f.newestSequence = std::max(f.newestSequence, decoded->sequence);
      if (!haveBest || decoded->sequence > pool->record_.sequence) {
        pool->record_ = std::move(*decoded);
        haveBest = true;
      }
    }
  }
  if (!haveBest) {
    std::string detail;
    for (const auto& p : problems) detail += "\n  " + p;
    return Error{"no valid copy of the pool metadata on any physical volume:" + detail};
  }

  bool needsCommit = false;
  pool->pvs_.resize(pool->record_.pvs.size());
  for (auto& f : found) {
    auto it = std::find_if(pool->record_.pvs.begin(), pool->record_.pvs.end(),
                           [&](const PvRecord& r) { return r.uuid == f.label.pvUuid; });
    if (it == pool->record_.pvs.end()) {
      log::warn("{}: physical volume {} is no longer part of pool {} (replaced?); ignoring it", f.path,
                formatUuid(f.label.pvUuid), pool->record_.name);
      continue;
    }
    uint32_t index = static_cast<uint32_t>(it - pool->record_.pvs.begin());
    if (pool->pvs_[index].image) return Error{fmt::format("{} and {} are the same physical volume", pool->pvs_[index].path, f.path)};
    if (f.image->sizeBytes() < kPvDataStart + it->extentCount * pool->record_.extentSize) {
      log::error("{}: shorter than its {} extents; treating it as missing", f.path, it->extentCount);
      continue;
    }
    if (f.newestSequence < pool->record_.sequence) needsCommit = true;  // a commit that did not reach this PV
    if (it->lastPath != f.path) {
      it->lastPath = f.path;
      needsCommit = true;
    }
    pool->pvs_[index] = {f.path, std::move(f.image), false};
  }
  auto loadIntent = [&]() -> Result<void> {
    auto intent = WriteIntent::load(*pool, std::chrono::milliseconds(options.intentIdleMs));
    if (!intent) return intent.error();
    pool->intent_ = std::move(*intent);
    return {};
  };
  if (options.readOnly) {
    if (auto l = loadIntent(); !l) return l.error();
    return pool;
  }

  if (auto locked = pool->lockPvs(); !locked) return locked.error();
  for (uint32_t i = 0; i < pool->pvs_.size(); ++i) {
    if (pool->pvs_[i].image || pool->record_.pvs[i].state == PvState::Failed) continue;
    // From now on its copies go stale, so it must not come back silently.
    log::warn("pool {}: PV {} is missing; marking it failed", pool->record_.name, pool->pvDisplayName(i));
    pool->record_.pvs[i].state = PvState::Failed;
    needsCommit = true;
  }
  if (needsCommit)
    if (auto c = pool->commit(); !c) return c.error();
  // Regions left marked by an unclean shutdown: make their copies and parity
  // agree before any volume is used.
  if (auto l = loadIntent(); !l) return l.error();
  if (auto r = resyncAfterUncleanShutdown(*pool); !r) return r.error();
  return pool;
}

void Pool::commitAsync(IoCompletion done) {
  commitWaiters_.push_back(std::move(done));
  if (!commitRunning_) runCommit();
}

void Pool::runCommit() {
  commitRunning_ = true;
  auto waiters = std::make_shared<std::vector<IoCompletion>>(std::move(commitWaiters_));
  commitWaiters_.clear();
  // The pool stays alive until its commit completes, even if its last volume closes.
  auto finish = [this, self = shared_from_this(), waiters](int result) {
    commitRunning_ = false;
    for (auto& w : *waiters) w(result);
    if (!commitWaiters_.empty() && !commitRunning_) runCommit();
  };
  if (readOnly()) return completeSoon(loop_, finish, -EROFS);
  record_.sequence++;
  if (auto valid = validatePoolRecord(record_); !valid) {
    log::error("pool {}: refusing to commit invalid metadata: {}", record_.name, valid.error().message);
    return completeSoon(loop_, finish, -EINVAL);
  }
  auto encoded = encodeMetadataSlot(record_);
  if (!encoded) {
    log::error("pool {}: {}", record_.name, encoded.error().message);
    return completeSoon(loop_, finish, -ENOSPC);
  }
  size_t length = (encoded->size() + 4095) & ~size_t{4095};
  auto buffer = std::make_shared<AlignedBuffer>(makeAlignedBuffer(length));
  std::memcpy(buffer->get(), encoded->data(), encoded->size());
  uint64_t offset = kPvSlotOffset[record_.sequence % 2];

  struct Outcome {
    std::vector<uint32_t> failed;
    uint32_t written = 0;
  };
  auto outcome = std::make_shared<Outcome>();
  auto join = IoJoin::make(loop_, [this, outcome, buffer, finish](int) {
    for (uint32_t pv : outcome->failed) {
      pvs_[pv].failedAtRuntime = true;
      record_.pvs[pv].state = PvState::Failed;
    }
    if (outcome->written == 0) return finish(-EIO);
    // Durable somewhere; record the PVs that refused it in a further commit.
    if (!outcome->failed.empty()) commitWaiters_.push_back([](int) {});
    finish(0);
  });
  for (uint32_t pv = 0; pv < pvs_.size(); ++pv) {
    if (!pvPresent(pv) || record_.pvs[pv].state == PvState::Failed) continue;
    RawImage* image = pvs_[pv].image.get();
    image->writev(offset, {iovec{buffer->get(), length}},
                  [this, image, pv, outcome, sub = join->add()](int result) mutable {
                    if (result < 0) {
                      outcome->failed.push_back(pv);
                      return sub(0);
                    }
                    image->flush([pv, outcome, sub = std::move(sub)](int flushed) {
                      if (flushed < 0)
                        outcome->failed.push_back(pv);
                      else
                        ++outcome->written;
                      sub(0);
                    });
                  });
  }
  join->arm();
}

Result<void> Pool::commit() {
  if (readOnly()) return Error{fmt::format("pool {} is open read-only", record_.name)};
  int status = runUntilComplete(loop_, [&](IoCompletion done) { commitAsync(std::move(done)); });
  // A follow-up commit (recording a PV that failed) may still be queued.
  while (commitRunning_) loop_.runOnce(-1);
  if (status < 0) return Error{fmt::format("pool {}: writing metadata failed: {}", record_.name, std::strerror(-status))};
  return {};
}

std::vector<bool> Pool::allocatablePvs() const {
  std::vector<bool> usable(pvs_.size());
  for (uint32_t i = 0; i < pvs_.size(); ++i) usable[i] = pvReadable(i);
  return usable;
}

uint64_t Pool::freeExtents() const { return ExtentAllocator(record_, allocatablePvs()).totalFree(); }

Result<void> Pool::zeroRuns(const std::vector<ExtentRun>& runs) {
  for (const ExtentRun& run : runs) {
    RawImage* image = pvImage(run.pv);
    if (!image) return Error{fmt::format("PV {} is missing", pvDisplayName(run.pv))};
    auto z = writeZeroesSync(*image, loop_, kPvDataStart + run.start * extentSize(), run.count * extentSize());
    if (!z) return Error{fmt::format("zeroing new extents on PV {}: {}", pvDisplayName(run.pv), z.error().message)};
  }
  for (uint32_t pv : [&] {
         std::set<uint32_t> s;
         for (const auto& r : runs) s.insert(r.pv);
         return s;
       }())
    if (auto f = flushSync(*pvImage(pv), loop_); !f) return f.error();
  return {};
}

uint32_t Pool::defaultLegs(VolumeType type, uint32_t mirrors) const {
  uint32_t usable = 0;
  for (bool u : allocatablePvs()) usable += u;
  switch (type) {
    case VolumeType::Striped: return std::max(1u, usable);
    case VolumeType::Raid5: return usable > 1 ? usable - 1 : 2;
    case VolumeType::Raid10: return std::max(2u, usable / std::max(2u, mirrors));
    default: return 1;
  }
}

Result<void> Pool::allocateLegs(VolumeRecord& v, uint32_t legCount, uint64_t legExtents) {
  ExtentAllocator allocator(record_, allocatablePvs());
  v.legs.assign(legCount, Leg{});
  v.legExtents = legExtents;
  if (v.type == VolumeType::Linear) {
    auto runs = allocator.allocateAnywhere(legExtents);
    if (!runs) return Error{fmt::format("cannot allocate {} extents for {}: {}", legExtents, v.name, runs.error().message)};
    for (const auto& run : *runs) appendRun(v.legs[0], run);
    return {};
  }
  auto pvs = allocator.choosePvs(legCount, legExtents);
  if (!pvs)
    return Error{fmt::format("cannot place {} ({} legs of {} extents, one PV each): {}", v.name, legCount, legExtents,
                             pvs.error().message)};
  for (uint32_t leg = 0; leg < legCount; ++leg) {
    auto runs = allocator.allocateOnPv((*pvs)[leg], legExtents);
    if (!runs) return runs.error();
    for (const auto& run : *runs) appendRun(v.legs[leg], run);
  }
  return {};
}

Result<void> Pool::growLegs(VolumeRecord& v, uint64_t newLegExtents) {
  ExtentAllocator allocator(record_, allocatablePvs());
  uint64_t add = newLegExtents - v.legExtents;
  std::vector<ExtentRun> added;
  for (Leg& leg : v.legs) {
    ExtentRun last = leg.runs.back();
    Result<std::vector<ExtentRun>> runs = Error{""};
    if (v.type == VolumeType::Linear) {
      runs = allocator.allocateAnywhere(add, &last);
    } else {
      uint32_t pv = legPrimaryPv(leg);
      if (!pvReadable(pv)) return Error{fmt::format("cannot grow {}: its PV {} is not healthy; replace it first", v.name, pvDisplayName(pv))};
      runs = allocator.allocateOnPv(pv, add, &last);
    }
    if (!runs) return Error{fmt::format("cannot grow {} by {} extents per leg: {}", v.name, add, runs.error().message)};
    for (const auto& run : *runs) {
      appendRun(leg, run);
      added.push_back(run);
    }
  }
  if (auto z = zeroRuns(added); !z) return z;
  v.legExtents = newLegExtents;
  v.sizeBytes = volumeCapacity(v, extentSize());
  return {};
}

Result<const VolumeRecord*> Pool::createVolume(const std::string& name, const VolumeCreateOptions& options) {
  if (readOnly()) return Error{fmt::format("pool {} is open read-only", record_.name)};
  if (auto n = checkName("volume", name); !n) return n.error();
  if (record_.findVolume(name)) return Error{fmt::format("pool {} already has a volume named {}", record_.name, name)};
  if (record_.volumes.size() + 3 > kPoolMaxVolumes) return Error{fmt::format("pool {} holds the maximum number of volumes", record_.name)};
  if (options.sizeBytes == 0) return Error{"a volume needs a size greater than zero"};

  VolumeRecord v;
  v.id = record_.nextVolumeId;
  v.name = name;
  v.type = options.type;

  if (options.type == VolumeType::Thin) {
    const VolumeRecord* thinPool = record_.findVolume(options.thinPool);
    if (!thinPool || thinPool->type != VolumeType::ThinPool)
      return Error{fmt::format("pool {} has no thin pool named '{}'", record_.name, options.thinPool)};
    if (options.sizeBytes > (1ull << 48)) return Error{"thin volumes are limited to 256 TiB"};
    v.thinPool = thinPool->id;
    v.sizeBytes = divideRoundUp(options.sizeBytes, 4096) * 4096;
    record_.nextVolumeId++;
    record_.volumes.push_back(v);
    if (auto c = commit(); !c) return c.error();
    return record_.findVolume(name);
  }

  if (options.type == VolumeType::ThinPool) {
    if (!isPowerOfTwo(options.chunkSize) || options.chunkSize < 4096 || options.chunkSize > (1u << 20) ||
        options.chunkSize > extentSize())
      return Error{fmt::format("chunk size {} must be a power of two from 4 KiB to 1 MiB, at most the extent size",
                               options.chunkSize)};
    if (options.dataType == VolumeType::ThinPool || options.dataType == VolumeType::Thin)
      return Error{"a thin pool's data must be linear, striped, mirror, raid5 or raid10"};
    std::string dataName = name + "_tdata", metaName = name + "_tmeta";
    if (name.size() + 6 > kMaxNameLength) return Error{fmt::format("thin pool name '{}' is too long", name)};
    if (record_.findVolume(dataName) || record_.findVolume(metaName))
      return Error{fmt::format("pool {} already has volumes named {} or {}", record_.name, dataName, metaName)};
    VolumeCreateOptions sub = options;
    sub.type = options.dataType;
    auto data = createVolume(dataName, sub);
    if (!data) return data.error();
    uint32_t dataId = (*data)->id;
    uint64_t dataBytes = (*data)->sizeBytes;
    sub.sizeBytes = options.metadataSize ? options.metadataSize : defaultThinMetadataSize(dataBytes, options.chunkSize);
    auto meta = createVolume(metaName, sub);
    if (!meta) return meta.error();
    uint32_t metaId = (*meta)->id;
    for (auto& r : record_.volumes)
      if (r.id == dataId || r.id == metaId) r.flags |= kVolumeHidden;
    if (auto c = commit(); !c) return c.error();
    auto metaDevice = openLeggedVolume(*record_.findVolumeById(metaId), false);
    if (!metaDevice) return metaDevice.error();
    if (auto f = ThinPoolEngine::format(**metaDevice, loop_, options.chunkSize); !f) return f.error();
    v.id = record_.nextVolumeId++;
    v.dataVolume = dataId;
    v.metaVolume = metaId;
    v.chunkSize = options.chunkSize;
    v.sizeBytes = dataBytes;
    record_.volumes.push_back(v);
    if (auto c = commit(); !c) return c.error();
    return record_.findVolume(name);
  }

  uint32_t legs = 1;
  v.mirrors = 1;
  bool striped = options.type == VolumeType::Striped || options.type == VolumeType::Raid5 ||
                 options.type == VolumeType::Raid10;
  if (striped) {
    if (!isPowerOfTwo(options.stripeSize) || options.stripeSize < 4096 || options.stripeSize > extentSize())
      return Error{fmt::format("stripe size {} must be a power of two from 4 KiB to the extent size ({})",
                               options.stripeSize, extentSize())};
    v.stripeSize = options.stripeSize;
  }
  uint32_t stripes = options.stripes ? options.stripes : defaultLegs(options.type, options.mirrors);
  switch (options.type) {
    case VolumeType::Linear: break;
    case VolumeType::Striped: legs = stripes; break;
    case VolumeType::Mirror:
      if (options.mirrors < 2) return Error{"a mirror needs at least 2 copies (--mirrors)"};
      legs = v.mirrors = options.mirrors;
      break;
    case VolumeType::Raid5:
      if (stripes < 2) return Error{"raid5 needs at least 2 data stripes (3 PVs)"};
      legs = stripes + 1;
      break;
    case VolumeType::Raid10:
      if (options.mirrors < 2) return Error{"raid10 needs at least 2 copies (--mirrors)"};
      if (stripes < 2) return Error{"raid10 needs at least 2 stripes"};
      v.mirrors = options.mirrors;
      legs = stripes * options.mirrors;
      break;
    default: return Error{"unsupported volume type"};
  }
  if (legs > kVolumeMaxLegs) return Error{fmt::format("{} legs is more than the {} allowed", legs, kVolumeMaxLegs)};
  v.legs.resize(legs);
  uint64_t perLeg = divideRoundUp(options.sizeBytes, static_cast<uint64_t>(dataLegCount(v)) * extentSize());
  if (auto a = allocateLegs(v, legs, perLeg); !a) return a.error();
  v.sizeBytes = volumeCapacity(v, extentSize());
  std::vector<ExtentRun> runs;
  for (const Leg& leg : v.legs) runs.insert(runs.end(), leg.runs.begin(), leg.runs.end());
  // New extents read as zeroes and RAID copies/parity start consistent.
  if (auto z = zeroRuns(runs); !z) return z.error();
  record_.nextVolumeId++;
  record_.volumes.push_back(v);
  if (auto c = commit(); !c) {
    record_.volumes.pop_back();
    return c.error();
  }
  return record_.findVolume(name);
}

Result<void> Pool::resizeVolume(const std::string& name, uint64_t newSize, bool allowShrink) {
  if (readOnly()) return Error{fmt::format("pool {} is open read-only", record_.name)};
  VolumeRecord* v = record_.findVolume(name);
  if (!v) return Error{fmt::format("pool {} has no volume named {}", record_.name, name)};
  if (v->hidden()) return Error{fmt::format("{} belongs to a thin pool; resize the thin pool", name)};
  if (newSize == 0) return Error{"a volume cannot shrink to zero bytes; remove it instead"};
  if (v->type == VolumeType::Thin) {
    newSize = divideRoundUp(newSize, 4096) * 4096;
    if (newSize > (1ull << 48)) return Error{"thin volumes are limited to 256 TiB"};
    if (newSize < v->sizeBytes) {
      if (!allowShrink)
        return Error{fmt::format("shrinking {} from {} to {} bytes discards data; pass --force", name, v->sizeBytes, newSize)};
      auto engine = thinEngine(v->thinPool);
      if (!engine) return engine.error();
      if (auto t = (*engine)->truncateDevice(v->id, newSize); !t) return t;
    }
    v->sizeBytes = newSize;
    return commit();
  }
  if (v->type == VolumeType::ThinPool) {
    VolumeRecord* data = nullptr;
    for (auto& r : record_.volumes)
      if (r.id == v->dataVolume) data = &r;
    if (newSize < v->sizeBytes) return Error{"thin pools cannot shrink"};
    uint64_t perLeg = divideRoundUp(newSize, static_cast<uint64_t>(dataLegCount(*data)) * extentSize());
    if (perLeg == data->legExtents) return {};
    if (auto g = growLegs(*data, perLeg); !g) return g;
    v = record_.findVolume(name);
    v->sizeBytes = data->sizeBytes;
    if (auto c = commit(); !c) return c;
    auto alive = thinEngines_.find(v->id);
    if (alive != thinEngines_.end())
      if (auto engine = alive->second.lock()) return engine->dataGrown();
    return {};
  }
  uint64_t perLeg = divideRoundUp(newSize, static_cast<uint64_t>(dataLegCount(*v)) * extentSize());
  if (perLeg == v->legExtents) return {};
  if (perLeg > v->legExtents) {
    if (auto g = growLegs(*v, perLeg); !g) return g;
    return commit();
  }
  if (!allowShrink)
    return Error{fmt::format("shrinking {} from {} to {} bytes discards data; pass --force", name, v->sizeBytes,
                             perLeg * dataLegCount(*v) * extentSize())};
  for (Leg& leg : v->legs) truncateLeg(leg, perLeg);
  v->legExtents = perLeg;
  v->sizeBytes = volumeCapacity(*v, extentSize());
  return commit();
}

Result<void> Pool::removeVolume(const std::string& name) {
  if (readOnly()) return Error{fmt::format("pool {} is open read-only", record_.name)};
  const VolumeRecord* v = record_.findVolume(name);
  if (!v) return Error{fmt::format("pool {} has no volume named {}", record_.name, name)};
  std::set<uint32_t> drop{v->id};
  if (v->hidden()) {
    for (const auto& r : record_.volumes)
      if (r.type == VolumeType::ThinPool && (r.dataVolume == v->id || r.metaVolume == v->id))
        return Error{fmt::format("{} is part of thin pool {}; remove the thin pool instead", name, r.name)};
  }
  if (v->type == VolumeType::ThinPool) {
    std::string users;
    for (const auto& r : record_.volumes)
      if (r.type == VolumeType::Thin && r.thinPool == v->id) users += (users.empty() ? "" : ", ") + r.name;
    if (!users.empty()) return Error{fmt::format("thin pool {} still holds thin volumes: {}", name, users)};
    auto alive = thinEngines_.find(v->id);
    if (alive != thinEngines_.end() && !alive->second.expired()) return Error{fmt::format("thin pool {} is in use", name)};
    drop.insert(v->dataVolume);
    drop.insert(v->metaVolume);
  }
  uint32_t thinPoolId = v->type == VolumeType::Thin ? v->thinPool : 0;
  uint32_t id = v->id;
  std::erase_if(record_.volumes, [&](const VolumeRecord& r) { return drop.count(r.id) > 0; });
  if (auto c = commit(); !c) return c;
  if (thinPoolId) {
    // The pool record no longer names it; dropping its chunks can be retried
    // at the next open (orphans are collected) if this fails.
    auto engine = thinEngine(thinPoolId);
    if (!engine) return Error{fmt::format("{} removed, but its chunks stay allocated until the thin pool opens: {}", name, engine.error().message)};
    if (auto d = (*engine)->deleteDevice(id); !d) return d;
  }
  return {};
}

Result<void> Pool::renameVolume(const std::string& from, const std::string& to) {
  if (readOnly()) return Error{fmt::format("pool {} is open read-only", record_.name)};
  if (auto n = checkName("volume", to); !n) return n.error();
  VolumeRecord* v = record_.findVolume(from);
  if (!v) return Error{fmt::format("pool {} has no volume named {}", record_.name, from)};
  if (v->hidden()) return Error{fmt::format("{} belongs to a thin pool and keeps its name", from)};
  if (record_.findVolume(to)) return Error{fmt::format("pool {} already has a volume named {}", record_.name, to)};
  v->name = to;
  for (auto& r : record_.volumes)
    if (r.origin == from) r.origin = to;
  return commit();
}

Result<void> Pool::snapshotVolume(const std::string& originName, const std::string& name, bool writable) {
  if (readOnly()) return Error{fmt::format("pool {} is open read-only", record_.name)};
  if (auto n = checkName("volume", name); !n) return n.error();
  const VolumeRecord* origin = record_.findVolume(originName);
  if (!origin) return Error{fmt::format("pool {} has no volume named {}", record_.name, originName)};
  if (origin->type != VolumeType::Thin)
    return Error{fmt::format("{} is a {} volume; snapshots and clones are made of thin volumes", originName,
                             volumeTypeName(origin->type))};
  if (record_.findVolume(name)) return Error{fmt::format("pool {} already has a volume named {}", record_.name, name)};
  VolumeRecord v = *origin;
  v.name = name;
  v.origin = originName;
  v.flags = writable ? 0 : kVolumeReadOnly;
  // Reserve the id durably first so a crash cannot hand it to another volume.
  v.id = record_.nextVolumeId++;
  if (auto c = commit(); !c) return c;
  auto engine = thinEngine(v.thinPool);
  if (!engine) return engine.error();
  if (auto s = (*engine)->snapshotDevice(v.id, origin->id); !s) return s;
  record_.volumes.push_back(v);
  return commit();
}

Result<void> Pool::addPhysicalVolume(const std::string& path, bool force) {
  if (readOnly()) return Error{fmt::format("pool {} is open read-only", record_.name)};
  if (record_.pvs.size() >= kPoolMaxPvs) return Error{fmt::format("a pool holds at most {} physical volumes", kPoolMaxPvs)};
  for (const auto& pv : pvs_)
    if (!pv.path.empty() && canonical(pv.path) == canonical(path))
      return Error{fmt::format("{} is already in pool {}", path, record_.name)};
  auto image = openPvForLabel(path, extentSize(), force, options_.direct, ring_, loop_);
  if (!image) return image.error();
  if (::flock((*image)->fd(), LOCK_EX | LOCK_NB) != 0) return Error{path + ": in use by another process"};
  PvRecord pv;
  pv.uuid = randomUuid();
  pv.sizeBytes = (*image)->sizeBytes();
  pv.extentCount = (pv.sizeBytes - kPvDataStart) / extentSize();
  pv.lastPath = path;
  record_.pvs.push_back(pv);
  uint32_t index = static_cast<uint32_t>(record_.pvs.size() - 1);
  if (auto l = labelPv(index, **image); !l) {
    record_.pvs.pop_back();
    return l;
  }
  pvs_.push_back({path, std::move(*image), false});
  if (intent_)
    if (auto a = intent_->attach(index); !a) return a;
  return commit();
}

void Pool::flushPvs(const std::vector<uint32_t>& pvs, bool redundant, IoCompletion done) {
  auto join = IoJoin::make(loop_, std::move(done));
  for (uint32_t pv : pvs) {
    if (!pvPresent(pv)) continue;
    uint64_t ticket = intent_ ? intent_->flushStarted(pv) : 0;
    pvs_[pv].image->flush([this, pv, ticket, redundant, sub = join->add()](int result) {
      if (result >= 0 && intent_) intent_->flushCompleted(pv, ticket);
      if (result < 0 && redundant) reportPvFailure(pv, result);
      sub(redundant ? 0 : result);
    });
  }
  join->arm();
}

std::shared_ptr<RangeLock> Pool::volumeLock(uint32_t volumeId) {
  auto& slot = volumeLocks_[volumeId];
  auto lock = slot.lock();
  if (!lock) {
    lock = std::make_shared<RangeLock>();
    slot = lock;
  }
  return lock;
}

void Pool::markRebuilt(uint32_t pv) {
  if (pv < record_.pvs.size()) record_.pvs[pv].state = PvState::Active;
}

Result<void> Pool::attachReplacement(uint32_t index, const std::string& path, std::unique_ptr<RawImage>* previous) {
  if (index >= record_.pvs.size()) return Error{fmt::format("pool {} has no PV #{}", record_.name, index)};
  bool samePath = !pvs_[index].path.empty() && canonical(pvs_[index].path) == canonical(path);
  for (uint32_t i = 0; i < pvs_.size(); ++i)
    if (i != index && !pvs_[i].path.empty() && canonical(pvs_[i].path) == canonical(path))
      return Error{fmt::format("{} is already PV {} of pool {}", path, pvDisplayName(i), record_.name)};
  if (samePath && pvReadable(index))
    return Error{fmt::format("PV {} is healthy; replace it with a different device", pvDisplayName(index))};
  // Re-adding the same device: its old contents are stale, drop our handle.
  if (samePath) pvs_[index].image.reset();
  if (previous && !pvs_[index].failedAtRuntime) *previous = std::move(pvs_[index].image);
  auto image = openPvForLabel(path, extentSize(), true, options_.direct, ring_, loop_);
  if (!image) return image.error();
  uint64_t needed = kPvDataStart + record_.pvs[index].extentCount * extentSize();
  if ((*image)->sizeBytes() < needed)
    return Error{fmt::format("{}: {} bytes is smaller than the {} bytes PV {} holds", path, (*image)->sizeBytes(),
                             needed, pvDisplayName(index))};
  if (::flock((*image)->fd(), LOCK_EX | LOCK_NB) != 0) return Error{path + ": in use by another process"};
  PvRecord& pv = record_.pvs[index];
  pv.uuid = randomUuid();
  pv.sizeBytes = (*image)->sizeBytes();
  pv.state = PvState::Rebuilding;
  pv.lastPath = path;
  if (auto l = labelPv(index, **image); !l) return l;
  pvs_[index] = {path, std::move(*image), false};
  if (intent_)
    if (auto a = intent_->attach(index); !a) return a;
  return commit();
}

Result<VolumeUsage> Pool::usage(const std::string& name) {
  const VolumeRecord* v = record_.findVolume(name);
  if (!v) return Error{fmt::format("pool {} has no volume named {}", record_.name, name)};
  VolumeUsage u{v->sizeBytes, v->sizeBytes, 0, 0};
  if (v->type == VolumeType::Thin || v->type == VolumeType::ThinPool) {
    uint32_t poolId = v->type == VolumeType::Thin ? v->thinPool : v->id;
    auto engine = thinEngine(poolId);
    if (!engine) return engine.error();
    if (v->type == VolumeType::Thin) {
      u.usedBytes = (*engine)->mappedChunks(v->id) * (*engine)->chunkSize();
    } else {
      u.usedBytes = (*engine)->usedChunks() * (*engine)->chunkSize();
      u.metadataUsedBytes = (*engine)->metadataUsedBytes();
      u.metadataSizeBytes = (*engine)->metadataSizeBytes();
    }
  }
  return u;
}

Result<std::unique_ptr<BlockDevice>> Pool::openLeggedVolume(const VolumeRecord& v, bool readOnlyDevice) {
  if (v.type == VolumeType::Raid5)
    return std::unique_ptr<BlockDevice>(new ParityVolume(shared_from_this(), v, readOnlyDevice));
  return std::unique_ptr<BlockDevice>(new LeggedVolume(shared_from_this(), v, readOnlyDevice));
}

Result<std::shared_ptr<ThinPoolEngine>> Pool::thinEngine(uint32_t thinPoolId) {
  auto it = thinEngines_.find(thinPoolId);
  if (it != thinEngines_.end())
    if (auto engine = it->second.lock()) return engine;
  const VolumeRecord* v = record_.findVolumeById(thinPoolId);
  if (!v || v->type != VolumeType::ThinPool) return Error{fmt::format("pool {} has no thin pool #{}", record_.name, thinPoolId)};
  auto engine = ThinPoolEngine::open(shared_from_this(), *v);
  if (!engine) return engine.error();
  thinEngines_[thinPoolId] = *engine;
  return engine;
}

Result<std::unique_ptr<BlockDevice>> Pool::openVolume(const std::string& name, bool readOnlyDevice) {
  const VolumeRecord* v = record_.findVolume(name);
  if (!v) return Error{fmt::format("pool {} has no volume named {}", record_.name, name)};
  if (v->hidden()) return Error{fmt::format("{} is internal to a thin pool", name)};
  readOnlyDevice = readOnlyDevice || readOnly() || v->readOnly();
  if (v->type == VolumeType::ThinPool)
    return Error{fmt::format("{} is a thin pool, not a disk; create thin volumes in it", name)};
  if (v->type == VolumeType::Thin) {
    auto engine = thinEngine(v->thinPool);
    if (!engine) return engine.error();
    return (*engine)->openThin(v->id, v->sizeBytes, readOnlyDevice);
  }
  return openLeggedVolume(*v, readOnlyDevice);
}

}  // namespace strata::storage::volume
