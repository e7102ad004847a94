#include "storage/volume/write_intent.h"

#include <fcntl.h>
#include <unistd.h>

#include <fmt/core.h>

#include <algorithm>
#include <cstring>

#include "base/log.h"
#include "storage/sync_io.h"
#include "storage/volume/leg_io.h"
#include "storage/volume/pool.h"

namespace strata::storage::volume {

namespace {

constexpr uint64_t kBitsPerBlock = kIntentBlockSize * 8;

size_t blocksFor(uint64_t regions) { return static_cast<size_t>((regions + kBitsPerBlock - 1) / kBitsPerBlock); }

bool allZero(const uint8_t* p, size_t length) {
  return std::all_of(p, p + length, [](uint8_t b) { return b == 0; });
}

}  // namespace

WriteIntent::~WriteIntent() = default;

Result<std::unique_ptr<WriteIntent>> WriteIntent::load(Pool& pool, std::chrono::milliseconds idle) {
  std::unique_ptr<WriteIntent> intent(new WriteIntent(pool, idle));
  intent->pvs_.resize(pool.pvCount());
  if (!pool.readOnly()) {
    auto ring = IoRing::create(pool.loop(), 32);
    if (!ring) return ring.error();
    intent->ring_ = std::move(*ring);
    WriteIntent* self = intent.get();
    auto timer = LoopTimer::create(pool.loop(), [self] {
      self->cleanerArmed_ = false;
      self->cleanIdle();
    });
    if (!timer) return timer.error();
    intent->cleaner_ = std::move(*timer);
  }
  for (uint32_t pv = 0; pv < pool.pvCount(); ++pv)
    if (auto loaded = intent->loadPv(pv); !loaded) return loaded.error();
  return intent;
}

Result<void> WriteIntent::loadPv(uint32_t pv) {
  PvBitmap& b = pvs_[pv];
  b = PvBitmap{};
  const PvRecord& record = pool_.record().pvs[pv];
  if (!pool_.pvPresent(pv) || record.state == PvState::Failed) return {};
  b.dataBytes = record.extentCount * pool_.extentSize();
  RawImage& image = *pool_.pvImage(pv);
  std::string where = fmt::format("pool {}: PV {}", pool_.name(), pool_.pvDisplayName(pv));
  auto header = makeAlignedBuffer(kIntentBlockSize);
  if (auto r = readSync(image, pool_.loop(), kPvIntentOffset, header.get(), kIntentBlockSize); !r)
    return Error{fmt::format("{}: reading the write-intent bitmap: {}", where, r.error().message)};
  b.header = {record.uuid, intentRegionBytes(b.dataBytes, pool_.options().intentRegionBytes), 0};
  b.header.regionCount = (b.dataBytes + b.header.regionBytes - 1) / b.header.regionBytes;
  if (!allZero(header.get(), kIntentBlockSize)) {
    auto decoded = decodeIntentHeader(header.get(), kIntentBlockSize, b.dataBytes);
    if (!decoded) {
      log::warn("{}: {}; resyncing all of its redundant data", where, decoded.error().message);
      b.allDirty = true;
    } else if (decoded->pvUuid != record.uuid) {
      log::warn("{}: the write-intent bitmap belongs to another PV; resyncing all of its redundant data", where);
      b.allDirty = true;
    } else {
      b.header = *decoded;
      b.headerOnDisk = true;
    }
  }
  b.blockCount = blocksFor(b.header.regionCount);
  b.blocks.resize(b.blockCount);
  b.bits = makeAlignedBuffer(b.blockCount * kIntentBlockSize);
  if (b.allDirty) {
    for (uint64_t r = 0; r < b.header.regionCount; ++r) setBit(b, r, true);
  } else if (b.headerOnDisk) {
    if (auto r = readSync(image, pool_.loop(), kPvIntentOffset + kIntentBlockSize, b.bits.get(),
                          b.blockCount * kIntentBlockSize);
        !r)
      return Error{fmt::format("{}: reading the write-intent bitmap: {}", where, r.error().message)};
    // Bits past the last region mean nothing; drop them so they never count.
    for (uint64_t r = b.header.regionCount; r < b.blockCount * kBitsPerBlock; ++r) setBit(b, r, false);
  }
  // Bitmap blocks go through the PV's own descriptor, each write with
  // RWF_DSYNC: durable on completion without flushing the PV's data.
  b.usable = !pool_.readOnly() && pool_.pvWritable(pv);
  return {};
}

bool WriteIntent::bit(const PvBitmap& b, uint64_t region) const {
  return (b.bits[region / 8] >> (region % 8)) & 1;
}

void WriteIntent::setBit(PvBitmap& b, uint64_t region, bool value) {
  uint8_t mask = static_cast<uint8_t>(1u << (region % 8));
  if (value)
    b.bits[region / 8] |= mask;
  else
    b.bits[region / 8] &= static_cast<uint8_t>(~mask);
}

template <typename Fn>
void WriteIntent::forEachRegion(const PvRange& range, Fn fn) {
  const PvBitmap& b = pvs_[range.pv];
  if (range.length == 0 || range.offset < kPvDataStart) return;
  uint64_t first = (range.offset - kPvDataStart) / b.header.regionBytes;
  uint64_t last = (range.offset + range.length - 1 - kPvDataStart) / b.header.regionBytes;
  for (uint64_t r = first; r <= last && r < b.header.regionCount; ++r) fn(r);
}

// --- the write path

void WriteIntent::markNew(uint32_t pv, uint64_t region, Region& g, std::vector<std::pair<uint32_t, size_t>>& toWrite) {
  PvBitmap& b = pvs_[pv];
  if (bit(b, region)) {
    g.kept = true;  // left set by resync for an at-risk volume: never cleared here
    return;
  }
  setBit(b, region, true);
  size_t blockIndex = static_cast<size_t>(region / kBitsPerBlock);
  g.durableAt = b.blocks[blockIndex].started + 1;  // the next write of the block carries it
  std::pair<uint32_t, size_t> write{pv, blockIndex};
  if (std::find(toWrite.begin(), toWrite.end(), write) == toWrite.end()) toWrite.push_back(write);
}

void WriteIntent::begin(const std::vector<PvRange>& ranges, std::function<void()> go) {
  std::shared_ptr<Waiter> waiter;
  std::vector<std::pair<uint32_t, size_t>> toWrite;
  for (const PvRange& range : ranges) {
    if (range.pv >= pvs_.size() || !pvs_[range.pv].usable || !pool_.pvWritable(range.pv)) continue;
    PvBitmap& b = pvs_[range.pv];
    forEachRegion(range, [&](uint64_t r) {
      auto [it, created] = b.regions.try_emplace(r);
      Region& g = it->second;
      ++g.inflight;
      if (created) markNew(range.pv, r, g, toWrite);
      Block& block = b.blocks[static_cast<size_t>(r / kBitsPerBlock)];
      if (block.completed >= g.durableAt) return;
      if (!waiter) waiter = std::make_shared<Waiter>(Waiter{1, std::move(go)});
      ++waiter->remaining;
      block.waiters.emplace_back(g.durableAt, waiter);
    });
  }
  for (auto [pv, block] : toWrite) writeBlock(pv, block);
  if (!waiter) return go();
  if (--waiter->remaining == 0) waiter->go();
}

void WriteIntent::end(const std::vector<PvRange>& ranges) {
  auto now = std::chrono::steady_clock::now();
  for (const PvRange& range : ranges) {
    if (range.pv >= pvs_.size() || !pvs_[range.pv].usable) continue;
    PvBitmap& b = pvs_[range.pv];
    forEachRegion(range, [&](uint64_t r) {
      auto it = b.regions.find(r);
      if (it == b.regions.end() || it->second.inflight == 0) return;
      if (--it->second.inflight > 0) return;
      it->second.lastEnd = now;
      it->second.lastEndFlush = b.flushesStarted;
    });
  }
}

void WriteIntent::writeBlock(uint32_t pv, size_t index) {
  PvBitmap& b = pvs_[pv];
  Block& block = b.blocks[index];
  if (block.writing) {
    block.queued = true;
    return;
  }
  block.writing = true;
  ++bitmapWrites_;
  uint64_t generation = ++block.started;
  if (!block.copy) block.copy = makeAlignedBuffer(kIntentBlockSize);
  std::memcpy(block.copy.get(), b.bits.get() + index * kIntentBlockSize, kIntentBlockSize);
  block.iov = {block.copy.get(), kIntentBlockSize};
  auto written = [this, pv, index, generation](int result) { blockWritten(pv, index, generation, result); };
  if (!pool_.pvPresent(pv)) {
    // The PV left the array (its data writes are skipped as well): nothing to guard.
    pool_.loop().post([written] { written(static_cast<int>(kIntentBlockSize)); });
    return;
  }
  ring_->writev(pool_.pvImage(pv)->fd(), &block.iov, 1, kPvIntentOffset + (index + 1) * kIntentBlockSize,
                std::move(written), RWF_DSYNC);
}

void WriteIntent::blockWritten(uint32_t pv, size_t index, uint64_t generation, int result) {
  PvBitmap& b = pvs_[pv];
  if (result != static_cast<int>(kIntentBlockSize)) {
    // The PV's data writes will fail or be skipped too: it is out of the array.
    log::error("pool {}: writing the write-intent bitmap of PV {} failed", pool_.name(), pool_.pvDisplayName(pv));
    pool_.reportPvFailure(pv, result < 0 ? result : -EIO);
  }
  Block& block = b.blocks[index];
  block.writing = false;
  block.completed = generation;
  std::vector<std::shared_ptr<Waiter>> ready;
  std::erase_if(block.waiters, [&](const auto& w) {
    if (w.first > generation) return false;
    ready.push_back(w.second);
    return true;
  });
  if (block.queued) {
    block.queued = false;
    writeBlock(pv, index);
  }
  // Last: a waiter's writes may begin new ones (and touch the blocks).
  for (auto& w : ready)
    if (--w->remaining == 0) w->go();
}

uint64_t WriteIntent::flushStarted(uint32_t pv) { return pv < pvs_.size() ? ++pvs_[pv].flushesStarted : 0; }

void WriteIntent::flushCompleted(uint32_t pv, uint64_t ticket) {
  if (pv >= pvs_.size()) return;
  pvs_[pv].flushedThrough = std::max(pvs_[pv].flushedThrough, ticket);
  cleanIdle();
}

void WriteIntent::cleanIdle() {
  if (!ring_) return;
  auto now = std::chrono::steady_clock::now();
  bool waitingForIdle = false;
  for (uint32_t pv = 0; pv < pvs_.size(); ++pv) {
    PvBitmap& b = pvs_[pv];
    if (!b.usable) continue;
    std::vector<size_t> toWrite;
    for (auto it = b.regions.begin(); it != b.regions.end();) {
      const Region& g = it->second;
      size_t index = static_cast<size_t>(it->first / kBitsPerBlock);
      // Clean once its writes are done and durable (a flush started after
      // the last of them completed) and it has been quiet for a while.
      bool settled = !g.kept && g.inflight == 0 && b.flushedThrough > g.lastEndFlush &&
                     b.blocks[index].completed >= g.durableAt;
      if (settled && now - g.lastEnd < idle_) {
        waitingForIdle = true;
        settled = false;
      }
      if (!settled) {
        ++it;
        continue;
      }
      setBit(b, it->first, false);
      if (std::find(toWrite.begin(), toWrite.end(), index) == toWrite.end()) toWrite.push_back(index);
      it = b.regions.erase(it);
    }
    for (size_t index : toWrite) writeBlock(pv, index);
  }
  if (waitingForIdle && !cleanerArmed_ && cleaner_) {
    cleanerArmed_ = cleaner_->arm(idle_).ok();
  }
}

size_t WriteIntent::markedRegions() const {
  size_t n = 0;
  for (const PvBitmap& b : pvs_)
    if (b.usable)
      for (uint64_t r = 0; r < b.header.regionCount; ++r) n += bit(b, r);
  return n;
}

// --- open, resync, replace, close

std::vector<ByteRange> WriteIntent::dirtyRanges(uint32_t pv) const {
  std::vector<ByteRange> out;
  if (pv >= pvs_.size() || !pvs_[pv].bits) return out;
  const PvBitmap& b = pvs_[pv];
  for (uint64_t r = 0; r < b.header.regionCount; ++r) {
    if (!bit(b, r)) continue;
    uint64_t lo = kPvDataStart + r * b.header.regionBytes;
    uint64_t hi = kPvDataStart + std::min(b.dataBytes, (r + 1) * b.header.regionBytes);
    if (lo >= hi) continue;
    if (!out.empty() && out.back().hi == lo)
      out.back().hi = hi;
    else
      out.push_back({lo, hi});
  }
  return out;
}

bool WriteIntent::anyDirty() const {
  for (uint32_t pv = 0; pv < pvs_.size(); ++pv)
    if (!dirtyRanges(pv).empty()) return true;
  return false;
}

void WriteIntent::setAtRisk(uint32_t volumeId, std::vector<ByteRange> legRanges) {
  if (legRanges.empty()) return;
  atRisk_[volumeId] = std::move(legRanges);
}

bool WriteIntent::atRisk(uint32_t volumeId, uint64_t legOffset, uint64_t length) const {
  auto it = atRisk_.find(volumeId);
  if (it == atRisk_.end()) return false;
  for (const ByteRange& r : it->second)
    if (r.lo < legOffset + length && legOffset < r.hi) return true;
  return false;
}

uint64_t WriteIntent::atRiskBytes(uint32_t volumeId) const {
  auto it = atRisk_.find(volumeId);
  uint64_t total = 0;
  if (it != atRisk_.end())
    for (const ByteRange& r : it->second) total += r.hi - r.lo;
  return total;
}

std::vector<std::vector<ByteRange>> WriteIntent::keptRanges() const {
  // The at-risk rows on every PV under them: their bits must survive.
  std::vector<std::vector<ByteRange>> keep(pvs_.size());
  for (const auto& [id, ranges] : atRisk_) {
    const VolumeRecord* v = pool_.record().findVolumeById(id);
    if (!v) continue;
    for (const Leg& leg : v->legs)
      for (const ByteRange& r : ranges) {
        std::vector<PvRange> pieces;
        legPvRanges(leg, pool_.extentSize(), r.lo, r.hi - r.lo, pieces);
        for (const PvRange& p : pieces)
          if (p.pv < keep.size()) keep[p.pv].push_back({p.offset, p.offset + p.length});
      }
  }
  return keep;
}

Result<void> WriteIntent::writeAreaSync(uint32_t pv) {
  PvBitmap& b = pvs_[pv];
  size_t length = (1 + b.blockCount) * kIntentBlockSize;
  auto area = makeAlignedBuffer(length);
  auto header = encodeIntentHeader(b.header);
  std::memcpy(area.get(), header.data(), header.size());
  std::memcpy(area.get() + kIntentBlockSize, b.bits.get(), b.blockCount * kIntentBlockSize);
  iovec iov{area.get(), length};
  ssize_t n = ::pwritev2(pool_.pvImage(pv)->fd(), &iov, 1, static_cast<off_t>(kPvIntentOffset), RWF_DSYNC);
  if (n != static_cast<ssize_t>(length))
    return Error{fmt::format("pool {}: writing the write-intent bitmap of PV {}: {}", pool_.name(),
                             pool_.pvDisplayName(pv), n < 0 ? std::strerror(errno) : "short write")};
  b.headerOnDisk = true;
  return {};
}

Result<void> WriteIntent::settle(bool rewrite) {
  auto keep = keptRanges();
  for (uint32_t pv = 0; pv < pvs_.size(); ++pv) {
    PvBitmap& b = pvs_[pv];
    if (!b.usable || !pool_.pvWritable(pv)) continue;  // a failed PV is rebuilt whole anyway
    bool changed = rewrite || !b.headerOnDisk;
    for (uint64_t r = 0; r < b.header.regionCount; ++r) {
      uint64_t lo = kPvDataStart + r * b.header.regionBytes, hi = lo + b.header.regionBytes;
      bool wanted = std::any_of(keep[pv].begin(), keep[pv].end(),
                                [&](const ByteRange& k) { return k.lo < hi && lo < k.hi; });
      changed = changed || bit(b, r) != wanted;
      setBit(b, r, wanted);
    }
    b.regions.clear();
    b.allDirty = false;
    if (changed)
      if (auto w = writeAreaSync(pv); !w) return w;
  }
  return {};
}

void WriteIntent::releaseAtRisk(uint32_t volumeId) {
  if (atRisk_.erase(volumeId) == 0) return;
  auto keep = keptRanges();
  for (uint32_t pv = 0; pv < pvs_.size(); ++pv) {
    PvBitmap& b = pvs_[pv];
    if (!b.usable) continue;
    std::vector<size_t> toWrite;
    for (uint64_t r = 0; r < b.header.regionCount; ++r) {
      if (!bit(b, r)) continue;
      uint64_t lo = kPvDataStart + r * b.header.regionBytes, hi = lo + b.header.regionBytes;
      if (std::any_of(keep[pv].begin(), keep[pv].end(), [&](const ByteRange& k) { return k.lo < hi && lo < k.hi; }))
        continue;
      auto it = b.regions.find(r);
      if (it != b.regions.end()) {
        it->second.kept = false;  // written this session: cleaned lazily like any other
        continue;
      }
      setBit(b, r, false);
      size_t index = static_cast<size_t>(r / kBitsPerBlock);
      if (std::find(toWrite.begin(), toWrite.end(), index) == toWrite.end()) toWrite.push_back(index);
    }
    for (size_t index : toWrite) writeBlock(pv, index);
  }
}

Result<void> WriteIntent::attach(uint32_t pv) {
  if (pv >= pvs_.size()) pvs_.resize(pv + 1);
  drain();  // writes of the previous PV's bitmap finish first (their waiters go on)
  if (auto loaded = loadPv(pv); !loaded) return loaded;
  if (!pvs_[pv].usable) return {};
  return writeAreaSync(pv);
}

void WriteIntent::drain() {
  auto writing = [&] {
    for (const PvBitmap& b : pvs_)
      for (const Block& block : b.blocks)
        if (block.writing) return true;
    return false;
  };
  while (writing()) pool_.loop().runOnce(-1);
}

void WriteIntent::closeClean() {
  if (!ring_) return;
  ring_.reset();  // waits for bitmap writes still in the kernel
  cleaner_.reset();
  if (bitmapWrites_ == 0) return;  // nothing changed since open
  // The data must be durable before its regions are declared consistent.
  for (uint32_t pv = 0; pv < pvs_.size(); ++pv) {
    if (!pvs_[pv].usable || !pool_.pvPresent(pv)) continue;
    if (::fdatasync(pool_.pvImage(pv)->fd()) != 0) {
      log::warn("pool {}: flushing PV {} at close failed; its write-intent bits stay set", pool_.name(),
                pool_.pvDisplayName(pv));
      pvs_[pv].usable = false;
    }
  }
  if (auto s = settle(true); !s) log::warn("{}", s.error().message);
}

}  // namespace strata::storage::volume
