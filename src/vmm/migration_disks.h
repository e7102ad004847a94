// Live migration without shared storage (`--with-disks`): the source mirrors
// each disk to the destination's own disk files on channel 0. A first pass
// sends what the disks hold (allocated extents as data, the rest as zero
// ranges), later rounds the 4 KiB blocks guest writes marked meanwhile
// (storage::DirtyTrackedDisk), the last one while the VM is paused. Records:
// a manifest (disk count, sizes and formats), data (CRC-32C per chunk), zero ranges and
// a flush after each round. The destination checks each against its disks,
// writes it, flushes where told and again before it answers OK.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "base/event_loop.h"
#include "base/result.h"
#include "storage/dirty_tracked_disk.h"
#include "storage/disk_image.h"
#include "vmm/migration_stream.h"

namespace strata::vmm::migration {

// A source disk as its manifest announces it; a destination makes a --disk
// file that does not exist yet so (its name is always the destination's own).
struct AnnouncedDisk {
  uint64_t sizeBytes = 0;
  storage::ImageFormat format = storage::ImageFormat::Raw;
};
// The largest disk a manifest may announce (qcow2's own limit is far above: a
// peer must not make this host create absurd files).
inline constexpr uint64_t kMaxAnnouncedDiskBytes = 64ull << 40;
// A manifest record's disks, every field checked (the peer is untrusted).
Result<std::vector<AnnouncedDisk>> parseDiskManifest(std::span<const uint8_t> record);

// Source side. Every disk request runs on the disks' loop (posted there; the
// caller waits), so the sender thread needs no file access of its own.
class DiskMirror {
 public:
  // Turns dirty tracking on for every disk and lists what the first pass sends.
  static Result<std::unique_ptr<DiskMirror>> start(std::vector<storage::BlockDevice*> disks, EventLoop& loop);
  ~DiskMirror();  // tracking off
  DiskMirror(const DiskMirror&) = delete;
  DiskMirror& operator=(const DiskMirror&) = delete;

  Result<void> sendManifest(ChannelWriter& channel);
  // Sends every pending range and forgets it, then a flush record.
  Result<void> sendPending(ChannelWriter& channel);
  // Adds the blocks written since the last call to the pending ranges.
  void takeDirty();
  // Pending bytes, in 4 KiB blocks (the unit memory pages are counted in).
  uint64_t pendingBlocks() const;

 private:
  struct Range {
    size_t disk;
    uint64_t offset;
    uint64_t length;
    bool zero;  // known to read as zeroes: sent as a range, not read
  };
  DiskMirror(std::vector<storage::DirtyTrackedDisk*> disks, EventLoop& loop) : disks_(std::move(disks)), loop_(loop) {}
  Result<void> sendData(ChannelWriter& channel, const Range& range);

  std::vector<storage::DirtyTrackedDisk*> disks_;
  EventLoop& loop_;
  std::vector<Range> pending_;
  std::vector<uint64_t> marked_;
};

// Destination side: applies channel 0's disk records to the disks given with
// --disk (each the source's size), on the thread that receives channel 0.
class DiskMirrorTarget {
 public:
  DiskMirrorTarget(const std::vector<std::unique_ptr<storage::BlockDevice>>& disks, EventLoop& loop)
      : disks_(disks), loop_(loop) {}
  Result<void> apply(std::span<const uint8_t> record);
  // Whether the source mirrored the disks (a manifest came).
  bool mirrored() const { return mirrored_; }
  // Every disk flushed: what arrived is durable before the VM runs here.
  Result<void> finish();

 private:
  const std::vector<std::unique_ptr<storage::BlockDevice>>& disks_;
  EventLoop& loop_;
  bool mirrored_ = false;
};

}  // namespace strata::vmm::migration
