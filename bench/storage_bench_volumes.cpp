#include "storage_bench_volumes.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include <fmt/core.h>

#include "storage/volume/pool_format.h"
#include "storage/volume/volume_disk.h"
#include "storage_bench_run.h"

namespace strata::bench {

using namespace storage::volume;

namespace {

constexpr uint64_t kExtent = kDefaultExtentSize;
constexpr char kVolumeName[] = "vol";
constexpr char kThinPoolName[] = "tp";

uint64_t roundUp(uint64_t value, uint64_t unit) { return (value + unit - 1) / unit * unit; }

// Bytes each PV needs: one leg (the volume split over its data legs), the
// label and metadata area, and an extent or two for rounding.
uint64_t pvBytes(const VolumeLayout& layout, uint64_t volumeBytes) {
  uint64_t leg = volumeBytes;
  switch (layout.type) {
    case VolumeType::Striped:
    case VolumeType::Raid5:
    case VolumeType::Raid10: leg = (volumeBytes + layout.stripes - 1) / layout.stripes; break;
    case VolumeType::Thin:
    case VolumeType::ThinPool: leg = 2 * volumeBytes + (64 << 20); break;  // data with headroom, and metadata
    default: break;
  }
  return kPvDataStart + roundUp(leg, kExtent) + 2 * kExtent;
}

Result<void> makeSparseFile(const std::string& path, uint64_t bytes) {
  int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) return errnoError(path);
  int rc = ::ftruncate(fd, static_cast<off_t>(bytes));
  ::close(fd);
  if (rc != 0) return errnoError(path);
  return {};
}

}  // namespace

Result<PoolVolume> createPoolVolume(const std::string& dir, const std::string& poolName, const VolumeLayout& layout,
                                    uint64_t volumeBytes, EventLoop& loop, const PvMapper& mapPv) {
  PoolVolume out{poolName, fmt::format("pool:{}/{}", poolName, kVolumeName), {}, {}};
  for (uint32_t i = 0; i < layout.pvs; ++i) {
    std::string file = fmt::format("{}/{}.pv{}", dir, poolName, i);
    if (auto made = makeSparseFile(file, pvBytes(layout, volumeBytes)); !made) return made.error();
    out.files.push_back(file);
    if (!mapPv) {
      out.pvPaths.push_back(file);
      continue;
    }
    auto mapped = mapPv(file);
    if (!mapped) return mapped.error();
    out.pvPaths.push_back(*mapped);
  }
  auto pool = Pool::create(poolName, out.pvPaths, {.extentSize = kExtent}, loop);
  if (!pool) return pool.error();
  if (auto registered = writePoolRegistry(poolName, out.pvPaths); !registered) return registered.error();

  VolumeCreateOptions options;
  options.sizeBytes = volumeBytes;
  options.stripes = layout.stripes;
  options.mirrors = layout.mirrors;
  if (layout.type == VolumeType::Thin) {
    // The thin pool gets some headroom over the thin volume, which the bench fills completely.
    options.type = VolumeType::ThinPool;
    options.sizeBytes = volumeBytes + volumeBytes / 8;
    if (auto tp = (*pool)->createVolume(kThinPoolName, options); !tp) return tp.error();
    options.sizeBytes = volumeBytes;
    options.thinPool = kThinPoolName;
  }
  options.type = layout.type;
  if (auto v = (*pool)->createVolume(kVolumeName, options); !v) return v.error();
  return out;
}

Result<OpenedVolume> openWithPool(const PoolVolume& volume, bool direct, EventLoop& loop) {
  auto pool = openPoolByName(volume.poolName, {}, {.direct = direct}, loop);
  if (!pool) return pool.error();
  auto device = (*pool)->openVolume(kVolumeName);
  if (!device) return device.error();
  return OpenedVolume{*pool, std::move(*device)};
}

void dropPageCache(const std::vector<std::string>& paths) {
  for (const auto& path : paths) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ::fdatasync(fd);  // dirty pages would stay cached
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

void PvQueueProbe::sample() {
  unsigned busy = 0;
  for (uint32_t pv = 0; pv < pool_.pvCount(); ++pv) {
    if (!pool_.pvPresent(pv)) continue;
    unsigned depth = pool_.pvImage(pv)->inFlight();
    maxPerPv_ = std::max(maxPerPv_, depth);
    busy += depth > 0;
  }
  maxBusyPvs_ = std::max(maxBusyPvs_, busy);
}

Result<RebuildMeasurement> measureRaid5Rebuild(const std::string& dir, uint32_t pvs, uint64_t volumeBytes,
                                               EventLoop& loop) {
  VolumeLayout layout{"raid5", VolumeType::Raid5, pvs, pvs - 1, 2};
  auto created = createPoolVolume(dir, "rebuild", layout, volumeBytes, loop);
  if (!created) return created.error();
  // Opened like `strata pool replace` opens it: from the registry, buffered.
  auto pool = openPoolByName(created->poolName, {}, {}, loop);
  if (!pool) return pool.error();
  {
    auto device = (*pool)->openVolume(kVolumeName);
    if (!device) return device.error();
    if (!fillDevice(**device, loop)) return Error{"filling the RAID 5 volume failed"};
  }
  dropPageCache(created->files);  // the rebuild reads the surviving PVs from the disk

  std::fprintf(stderr, "failing PV #1 of pool rebuild on purpose (the error logged next is expected)\n");
  (*pool)->failPhysicalVolume(1);  // as `strata pool fail`
  if (auto c = (*pool)->commit(); !c) return c.error();
  std::string fresh = dir + "/rebuild.new1";
  if (auto made = makeSparseFile(fresh, pvBytes(layout, volumeBytes)); !made) return made.error();

  RebuildMeasurement out;
  auto replaced = replacePhysicalVolume(**pool, "1", fresh, false, {});
  if (!replaced) return replaced.error();
  out.replace = *replaced;

  dropPageCache(created->files);
  dropPageCache({fresh});
  auto start = std::chrono::steady_clock::now();
  auto scrubbed = scrubPool(**pool, false, {});
  if (!scrubbed) return scrubbed.error();
  out.scrubSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  out.scrub = *scrubbed;
  return out;
}

}  // namespace strata::bench
