#include "storage/volume_pool.h"

#include <unistd.h>

#include <fmt/core.h>

#include <algorithm>
#include <random>
#include <set>

#include "base/log.h"

namespace strata::storage::volume {

namespace {

Uuid randomUuid() {
  std::random_device random;
  Uuid uuid{};
  for (auto& b : uuid) b = static_cast<uint8_t>(random());
  uuid[6] = static_cast<uint8_t>((uuid[6] & 0x0f) | 0x40);  // RFC 4122 version 4
  uuid[8] = static_cast<uint8_t>((uuid[8] & 0x3f) | 0x80);
  return uuid;
}

// The newest valid copy on one PV, or an error naming why neither slot is usable.
Result<DecodedSlot> readBestSlot(int fd, const std::string& path) {
  Result<DecodedSlot> best = Error{path + ": no strata physical volume label"};
  for (int slot = 0; slot < 2; ++slot) {
    std::vector<uint8_t> bytes(kSlotSize);
    ssize_t got = ::pread(fd, bytes.data(), bytes.size(), static_cast<off_t>(kSlotOffset + slot * kSlotSize));
    if (got < 0) return errnoError(path);
    bytes.resize(static_cast<size_t>(got));
    auto decoded = decodeSlot(bytes);
    if (!decoded) {
      if (!best.ok()) best = Error{path + ": " + decoded.error().message};
      continue;
    }
    if (!best.ok() || decoded->pool.sequence > best->pool.sequence) best = std::move(decoded);
  }
  return best;
}

std::vector<iovec> sliceBuffers(const std::vector<iovec>& buffers, size_t offset, size_t length) {
  std::vector<iovec> slice;
  for (const auto& b : buffers) {
    if (length == 0) break;
    if (offset >= b.iov_len) {
      offset -= b.iov_len;
      continue;
    }
    size_t take = std::min(b.iov_len - offset, length);
    slice.push_back(iovec{static_cast<uint8_t*>(b.iov_base) + offset, take});
    length -= take;
    offset = 0;
  }
  return slice;
}

}  // namespace

Result<std::unique_ptr<VolumePool>> VolumePool::create(const std::string& name, const std::vector<std::string>& pvPaths,
                                                       uint64_t extentSize, EventLoop& loop) {
  if (name.empty() || name.size() > 255) return Error{"pool name must be 1 to 255 characters"};
  if (pvPaths.empty() || pvPaths.size() > kMaxPhysicalVolumes) return Error{"a pool needs 1 to 256 physical volumes"};
  if (extentSize < 65536 || (extentSize & (extentSize - 1)) != 0) return Error{"extent size must be a power of two >= 64K"};
  std::unique_ptr<VolumePool> pool(new VolumePool(loop));
  pool->meta_.poolUuid = randomUuid();
  pool->meta_.name = name;
  pool->meta_.extentSize = extentSize;
  for (const auto& path : pvPaths) {
    auto pv = RawImage::open(path, RawOpenOptions{}, loop);
    if (!pv) return pv.error();
    auto existing = readBestSlot((*pv)->fd(), path);
    if (existing) return Error{path + ": already a physical volume of pool '" + existing->pool.name + "'"};
    if ((*pv)->sizeBytes() < kDataStart + extentSize) return Error{path + ": too small for one extent"};
    pool->meta_.pvs.push_back(PhysicalVolumeInfo{randomUuid(), ((*pv)->sizeBytes() - kDataStart) / extentSize});
    pool->pvs_.push_back(std::move(*pv));
    pool->paths_.push_back(path);
  }
  auto committed = pool->commit();
  if (!committed) return committed.error();
  return pool;
}

Result<std::unique_ptr<VolumePool>> VolumePool::open(const std::vector<std::string>& pvPaths, EventLoop& loop) {
  std::unique_ptr<VolumePool> pool(new VolumePool(loop));
  std::vector<std::unique_ptr<RawImage>> opened;
  std::vector<DecodedSlot> slots;
  for (const auto& path : pvPaths) {
    auto pv = RawImage::open(path, RawOpenOptions{}, loop);
    if (!pv) return pv.error();
    auto slot = readBestSlot((*pv)->fd(), path);
    if (!slot) return slot.error();
    opened.push_back(std::move(*pv));
    slots.push_back(std::move(*slot));
  }
  if (slots.empty()) return Error{"no physical volumes given"};
  size_t newest = 0;
  for (size_t i = 0; i < slots.size(); ++i) {
    if (slots[i].pool.poolUuid != slots[0].pool.poolUuid) {
      return Error{pvPaths[i] + ": belongs to a different pool than " + pvPaths[0]};
    }
    if (slots[i].pool.sequence > slots[newest].pool.sequence) newest = i;
  }
  pool->meta_ = slots[newest].pool;
  pool->pvs_.resize(pool->meta_.pvs.size());
  pool->paths_.resize(pool->meta_.pvs.size());
  bool stale = false;
  for (size_t i = 0; i < slots.size(); ++i) {
    uint32_t index = slots[i].pvIndex;
    if (index >= pool->pvs_.size() || slots[i].pool.pvs.size() <= index ||
        slots[i].pool.pvs[index].uuid != pool->meta_.pvs[index].uuid) {
      return Error{pvPaths[i] + ": physical volume is not part of the pool's current metadata"};
    }
    if (pool->pvs_[index]) return Error{pvPaths[i] + ": same physical volume given twice"};
    stale |= slots[i].pool.sequence != pool->meta_.sequence;
    pool->pvs_[index] = std::move(opened[i]);
    pool->paths_[index] = pvPaths[i];
  }
  for (size_t i = 0; i < pool->pvs_.size(); ++i) {
    if (!pool->pvs_[i]) {
      return Error{fmt::format("pool '{}': physical volume {} ({}) is missing", pool->meta_.name, i,
                               uuidToString(pool->meta_.pvs[i].uuid))};
    }
  }
  if (stale) {
    // A commit was interrupted: bring every PV to the newest metadata.
    log::warn("pool '{}': metadata copies disagree; rewriting sequence {}", pool->meta_.name, pool->meta_.sequence);
    auto committed = pool->commit();
    if (!committed) return committed.error();
  }
  return pool;
}

Result<void> VolumePool::commit() {
  PoolMetadata next = meta_;
  ++next.sequence;
  // Odd sequences go to slot 1, even to slot 0: the previous version stays intact.
  const uint64_t offset = kSlotOffset + (next.sequence % 2) * kSlotSize;
  for (size_t i = 0; i < pvs_.size(); ++i) {
    auto bytes = encodeSlot(next, static_cast<uint32_t>(i));
    if (bytes.size() > kSlotSize) return Error{"pool metadata too large"};
    if (::pwrite(pvs_[i]->fd(), bytes.data(), bytes.size(), static_cast<off_t>(offset)) !=
            static_cast<ssize_t>(bytes.size()) ||
        ::fdatasync(pvs_[i]->fd()) != 0) {
      return errnoError(paths_[i] + ": writing pool metadata");
    }
  }
  meta_ = std::move(next);
  return {};
}

std::vector<std::vector<bool>> VolumePool::usedExtents() const {
  std::vector<std::vector<bool>> used;
  for (const auto& pv : meta_.pvs) used.emplace_back(pv.extentCount, false);
  for (const auto& lv : meta_.volumes) {
    for (const auto& s : lv.segments) {
      for (uint64_t e = 0; e < s.extentCount; ++e) used[s.pvIndex][s.startExtent + e] = true;
    }
  }
  return used;
}

uint64_t VolumePool::freeExtents() const {
  uint64_t free = 0;
  for (const auto& pv : usedExtents()) free += static_cast<uint64_t>(std::count(pv.begin(), pv.end(), false));
  return free;
}

Result<void> VolumePool::createVolume(const std::string& name, uint64_t sizeBytes, const VolumeLayout& layout) {
  if (name.empty() || name.size() > 128) return Error{"volume name must be 1 to 128 characters"};
  for (const auto& lv : meta_.volumes) {
    if (lv.name == name) return Error{"volume '" + name + "' already exists"};
  }
  if (meta_.volumes.size() >= kMaxVolumes) return Error{"too many volumes"};
  if (sizeBytes == 0 || sizeBytes % 512 != 0) return Error{"volume size must be a positive multiple of 512"};
  const uint64_t extentSize = meta_.extentSize;
  uint64_t extents = (sizeBytes + extentSize - 1) / extentSize;
  auto used = usedExtents();
  LogicalVolumeInfo lv;
  lv.name = name;
  lv.sizeBytes = sizeBytes;
  lv.layout = layout.layout;
  if (layout.layout == Layout::Linear) {
    uint64_t needed = extents;
    for (uint32_t pv = 0; pv < used.size() && needed > 0; ++pv) {
      for (uint64_t e = 0; e < used[pv].size() && needed > 0; ++e) {
        if (used[pv][e]) continue;
        if (!lv.segments.empty() && lv.segments.back().pvIndex == pv &&
            lv.segments.back().startExtent + lv.segments.back().extentCount == e) {
          ++lv.segments.back().extentCount;
        } else {
          lv.segments.push_back(Segment{pv, e, 1});
        }
        --needed;
      }
    }
    if (needed > 0) {
      return Error{fmt::format("not enough free space: need {} extents, {} free", extents, freeExtents())};
    }
  } else {
    if (layout.stripes < 2 || layout.stripes > used.size()) {
      return Error{fmt::format("striping needs 2 to {} stripes (one per physical volume)", used.size())};
    }
    if (layout.stripeSize < 4096 || (layout.stripeSize & (layout.stripeSize - 1)) != 0 ||
        extentSize % layout.stripeSize != 0) {
      return Error{"stripe size must be a power of two between 4K and the extent size"};
    }
    lv.stripes = layout.stripes;
    lv.stripeSize = layout.stripeSize;
    uint64_t legExtents = (extents + layout.stripes - 1) / layout.stripes;
    for (uint32_t pv = 0; pv < used.size() && lv.segments.size() < layout.stripes; ++pv) {
      uint64_t run = 0;
      for (uint64_t e = 0; e < used[pv].size(); ++e) {
        run = used[pv][e] ? 0 : run + 1;
        if (run == legExtents) {
          lv.segments.push_back(Segment{pv, e + 1 - legExtents, legExtents});
          break;
        }
      }
    }
    if (lv.segments.size() < layout.stripes) {
      return Error{fmt::format("not enough physical volumes with {} contiguous free extents for {} stripes",
                               legExtents, layout.stripes)};
    }
  }
  meta_.volumes.push_back(std::move(lv));
  auto committed = commit();
  if (!committed) {
    meta_.volumes.pop_back();
    return committed;
  }
  return {};
}

Result<void> VolumePool::removeVolume(const std::string& name) {
  auto it = std::find_if(meta_.volumes.begin(), meta_.volumes.end(), [&](const auto& lv) { return lv.name == name; });
  if (it == meta_.volumes.end()) return Error{"no volume named '" + name + "'"};
  auto saved = meta_;
  meta_.volumes.erase(it);
  auto committed = commit();
  if (!committed) meta_ = std::move(saved);
  return committed;
}

Result<std::unique_ptr<BlockDevice>> VolumePool::openVolume(const std::string& name) {
  for (const auto& lv : meta_.volumes) {
    if (lv.name != name) continue;
    std::vector<RawImage*> pvs;
    for (auto& pv : pvs_) pvs.push_back(pv.get());
    return std::unique_ptr<BlockDevice>(new LogicalVolume(lv, std::move(pvs), meta_.extentSize, loop_));
  }
  return Error{"no volume named '" + name + "' in pool '" + meta_.name + "'"};
}

// ---- LogicalVolume ----

LogicalVolume::LogicalVolume(LogicalVolumeInfo info, std::vector<RawImage*> pvs, uint64_t extentSize, EventLoop& loop)
    : info_(std::move(info)), pvs_(std::move(pvs)), extentSize_(extentSize), loop_(loop) {}

std::string LogicalVolume::serial() const {
  return info_.name.size() > 20 ? info_.name.substr(info_.name.size() - 20) : info_.name;
}

std::vector<LogicalVolume::Piece> LogicalVolume::map(uint64_t offset, uint64_t length) const {
  std::vector<Piece> pieces;
  auto add = [&](uint32_t pv, uint64_t pvOffset, uint64_t volumeOffset, uint64_t bytes) {
    if (!pieces.empty() && pieces.back().pvIndex == pv && pieces.back().pvOffset + pieces.back().length == pvOffset) {
      pieces.back().length += bytes;
    } else {
      pieces.push_back(Piece{pv, pvOffset, volumeOffset, bytes});
    }
  };
  const uint64_t end = offset + length;
  if (info_.layout == Layout::Linear) {
    uint64_t segmentStart = 0;
    for (const auto& s : info_.segments) {
      uint64_t segmentEnd = segmentStart + s.extentCount * extentSize_;
      if (offset < segmentEnd && end > segmentStart) {
        uint64_t from = std::max(offset, segmentStart);
        uint64_t to = std::min(end, segmentEnd);
        add(s.pvIndex, kDataStart + s.startExtent * extentSize_ + (from - segmentStart), from, to - from);
      }
      segmentStart = segmentEnd;
    }
    return pieces;
  }
  const uint64_t stripes = info_.stripes;
  for (uint64_t pos = offset; pos < end;) {
    uint64_t chunk = pos / info_.stripeSize;
    uint64_t within = pos % info_.stripeSize;
    const Segment& leg = info_.segments[chunk % stripes];
    uint64_t bytes = std::min(info_.stripeSize - within, end - pos);
    add(leg.pvIndex, kDataStart + leg.startExtent * extentSize_ + (chunk / stripes) * info_.stripeSize + within, pos,
        bytes);
    pos += bytes;
  }
  return pieces;
}

void LogicalVolume::run(Op op, uint64_t offset, uint64_t length, const std::vector<iovec>& buffers, IoCompletion done) {
  if (offset + length < offset || offset + length > info_.sizeBytes) {
    loop_.post([done = std::move(done)] { done(-EINVAL); });
    return;
  }
  struct Join {
    int status = 0;
    size_t remaining = 0;
    IoCompletion done;
  };
  auto pieces = map(offset, length);
  auto join = std::make_shared<Join>(Join{0, pieces.size() + 1, std::move(done)});
  auto part = [join](int result) {
    if (result < 0 && join->status == 0) join->status = result;
    if (--join->remaining == 0) join->done(join->status);
  };
  for (const auto& p : pieces) {
    RawImage* pv = pvs_[p.pvIndex];
    switch (op) {
      case Op::Read:
        pv->readv(p.pvOffset, sliceBuffers(buffers, p.volumeOffset - offset, p.length), part);
        break;
      case Op::Write:
        pv->writev(p.pvOffset, sliceBuffers(buffers, p.volumeOffset - offset, p.length), part);
        break;
      case Op::Discard:
        pv->discard(p.pvOffset, p.length, part);
        break;
      case Op::Zero:
        pv->writeZeroes(p.pvOffset, p.length, part);
        break;
    }
  }
  loop_.post([part] { part(0); });  // never complete inside the submitting call
}

void LogicalVolume::readv(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) {
  uint64_t length = 0;
  for (const auto& b : buffers) length += b.iov_len;
  run(Op::Read, offset, length, buffers, std::move(done));
}

void LogicalVolume::writev(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) {
  uint64_t length = 0;
  for (const auto& b : buffers) length += b.iov_len;
  run(Op::Write, offset, length, buffers, std::move(done));
}

void LogicalVolume::discard(uint64_t offset, uint64_t length, IoCompletion done) {
  run(Op::Discard, offset, length, {}, std::move(done));
}

void LogicalVolume::writeZeroes(uint64_t offset, uint64_t length, IoCompletion done) {
  run(Op::Zero, offset, length, {}, std::move(done));
}

void LogicalVolume::flush(IoCompletion done) {
  std::set<uint32_t> used;
  for (const auto& s : info_.segments) used.insert(s.pvIndex);
  struct Join {
    int status = 0;
    size_t remaining;
    IoCompletion done;
  };
  auto join = std::make_shared<Join>(Join{0, used.size() + 1, std::move(done)});
  auto part = [join](int result) {
    if (result < 0 && join->status == 0) join->status = result;
    if (--join->remaining == 0) join->done(join->status);
  };
  for (uint32_t pv : used) pvs_[pv]->flush(part);
  loop_.post([part] { part(0); });
}

}  // namespace strata::storage::volume
