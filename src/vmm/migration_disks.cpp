#include "vmm/migration_disks.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <future>

#include <fmt/core.h>

#include "machine/virt_layout.h"
#include "storage/crc32c.h"
#include "storage/sync_io.h"
#include "vmm/live_disk.h"

namespace strata::vmm::migration {
namespace {

// Disk record layout (little-endian), inside the stream's disk records:
// Manifest: u8 5 | u32 count | per disk u64 size, u8 format (0 raw, 1 qcow2); kind 1
// was the manifest without formats, which this side no longer takes. Data: u8 2 | u32 disk | u64
// offset | u32 CRC-32C of the bytes | bytes. Zero: u8 3 | u32 disk | u64 offset | u64 length.
// Flush: u8 4, after each round, so the flush before OK (in the downtime) finds little left to write.
enum DiskRecordKind : uint8_t { kData = 2, kZero = 3, kFlush = 4, kManifest = 5 };
enum AnnouncedFormat : uint8_t { kRaw = 0, kQcow2 = 1 };
constexpr size_t kDataHeaderBytes = 1 + 4 + 8 + 4;
constexpr uint64_t kReadBytes = 1 << 20;     // one read from the source disk
constexpr uint64_t kChunkBytes = 64 << 10;   // one data record, checksummed on its own
constexpr auto kDiskTimeout = std::chrono::seconds(30);
static_assert(kDataHeaderBytes + kChunkBytes <= kMaxDiskRecordBytes);

// Runs `work` on the loop thread and waits for the value it reports through its
// callback. Whatever `work` captures must outlive a timeout (shared, or the disks).
Result<int> onLoop(EventLoop& loop, std::function<void(std::function<void(int)>)> work) {
  auto answer = std::make_shared<std::promise<int>>();
  auto future = answer->get_future();
  loop.post([work = std::move(work), answer] { work([answer](int value) { answer->set_value(value); }); });
  if (future.wait_for(kDiskTimeout) != std::future_status::ready)
    return Error{"the disks' I/O loop did not answer (the VM is ending?)"};
  return future.get();
}

template <typename T>
void put(std::vector<uint8_t>& out, T value) {
  const auto* bytes = reinterpret_cast<const uint8_t*>(&value);
  out.insert(out.end(), bytes, bytes + sizeof value);
}

// Reads fixed-size fields off a record, refusing to run past its end.
class Fields {
 public:
  explicit Fields(std::span<const uint8_t> record) : record_(record) {}
  template <typename T>
  Result<T> get() {
    if (record_.size() - at_ < sizeof(T)) return Error{"a disk record is cut short"};
    T value;
    std::memcpy(&value, record_.data() + at_, sizeof value);
    at_ += sizeof value;
    return value;
  }
  std::span<const uint8_t> rest() const { return record_.subspan(at_); }

 private:
  std::span<const uint8_t> record_;
  size_t at_ = 0;
};

}  // namespace

// ---- DiskMirror ----

Result<std::unique_ptr<DiskMirror>> DiskMirror::start(std::vector<storage::BlockDevice*> disks, EventLoop& loop) {
  std::vector<storage::DirtyTrackedDisk*> tracked;
  for (storage::BlockDevice* disk : disks) {
    auto* trackedDisk = dynamic_cast<storage::DirtyTrackedDisk*>(disk);
    if (trackedDisk == nullptr) return Error{"--with-disks: a disk of this VM has no write tracking"};
    tracked.push_back(trackedDisk);
  }
  std::unique_ptr<DiskMirror> mirror(new DiskMirror(std::move(tracked), loop));
  // Tracking first: a write completing from here on is marked, whatever the first pass read.
  for (auto* disk : mirror->disks_) disk->dirtyBlocks().setLogging(true);
  // The allocation status is the image's, kept on the loop thread.
  auto ranges = std::make_shared<std::vector<Range>>();
  auto failure = std::make_shared<std::string>();
  auto listed = onLoop(loop, [disks = mirror->disks_, ranges, failure](std::function<void(int)> done) {
    for (size_t index = 0; index < disks.size(); ++index) {
      const uint64_t size = disks[index]->sizeBytes();
      storage::DiskImage* image = disks[index]->image();
      if (image == nullptr) {  // a volume: all of it
        ranges->push_back({index, 0, size, false});
        continue;
      }
      const bool backed = image->backing() != nullptr;
      for (uint64_t at = 0; at < size;) {
        auto extent = image->blockStatus(at, size - at);
        if (!extent) {
          *failure = fmt::format("disk {}: {}", index, extent.error().message);
          return done(-1);
        }
        const bool zero = extent->kind == storage::ExtentKind::Zero ||
                          (extent->kind == storage::ExtentKind::Unallocated && !backed);
        if (!ranges->empty() && ranges->back().disk == index && ranges->back().zero == zero)
          ranges->back().length += extent->length;
        else
          ranges->push_back({index, at, extent->length, zero});
        at += extent->length;
      }
    }
    done(0);
  });
  if (!listed) return listed.error();
  if (*listed != 0) return Error{*failure};
  mirror->pending_ = std::move(*ranges);
  return mirror;
}

DiskMirror::~DiskMirror() {
  for (auto* disk : disks_) disk->dirtyBlocks().setLogging(false);
}

Result<void> DiskMirror::sendManifest(ChannelWriter& channel) {
  std::vector<uint8_t> record;
  put<uint8_t>(record, kManifest);
  put<uint32_t>(record, static_cast<uint32_t>(disks_.size()));
  for (auto* disk : disks_) {
    put<uint64_t>(record, disk->sizeBytes());
    auto* live = dynamic_cast<LiveDisk*>(&disk->tracked());
    put<uint8_t>(record, live && live->current().format == storage::ImageFormat::Qcow2 ? kQcow2 : kRaw);
  }
  return channel.sendDiskRecord(record);
}

Result<void> DiskMirror::sendData(ChannelWriter& channel, const Range& range) {
  storage::DirtyTrackedDisk* disk = disks_[range.disk];
  auto buffer = std::make_shared<std::vector<uint8_t>>();
  std::vector<uint8_t> record;
  for (uint64_t at = range.offset; at < range.offset + range.length; at += kReadBytes) {
    const uint64_t length = std::min(kReadBytes, range.offset + range.length - at);
    buffer->resize(length);
    auto read = onLoop(loop_, [disk, at, buffer](std::function<void(int)> done) {
      disk->readv(at, {iovec{buffer->data(), buffer->size()}}, [buffer, done](int result) { done(result); });
    });
    if (!read) return read.error();
    if (*read < 0) return Error{fmt::format("reading disk {} at {}: {}", range.disk, at, std::strerror(-*read))};
    for (uint64_t chunk = 0; chunk < length; chunk += kChunkBytes) {
      const uint8_t* bytes = buffer->data() + chunk;
      const uint64_t chunkLength = std::min(kChunkBytes, length - chunk);
      record.clear();
      const bool zero = std::all_of(bytes, bytes + chunkLength, [](uint8_t byte) { return byte == 0; });
      put<uint8_t>(record, zero ? kZero : kData);
      put<uint32_t>(record, static_cast<uint32_t>(range.disk));
      put<uint64_t>(record, at + chunk);
      if (zero) {
        put<uint64_t>(record, chunkLength);
      } else {
        put<uint32_t>(record, storage::crc32c(bytes, chunkLength));
        record.insert(record.end(), bytes, bytes + chunkLength);
      }
      if (auto sent = channel.sendDiskRecord(record); !sent) return sent;
    }
  }
  return {};
}

Result<void> DiskMirror::sendPending(ChannelWriter& channel) {
  if (pending_.empty()) return {};
  for (const Range& range : pending_) {
    if (!range.zero) {
      if (auto sent = sendData(channel, range); !sent) return sent;
      continue;
    }
    std::vector<uint8_t> record;
    put<uint8_t>(record, kZero);
    put<uint32_t>(record, static_cast<uint32_t>(range.disk));
    put<uint64_t>(record, range.offset);
    put<uint64_t>(record, range.length);
    if (auto sent = channel.sendDiskRecord(record); !sent) return sent;
  }
  pending_.clear();
  const uint8_t flush = kFlush;
  return channel.sendDiskRecord(std::span(&flush, 1));
}

void DiskMirror::takeDirty() {
  constexpr uint64_t kBlock = storage::DirtyTrackedDisk::kBlockBytes;
  for (size_t index = 0; index < disks_.size(); ++index) {
    marked_.clear();
    disks_[index]->dirtyBlocks().takeMarked(marked_);
    const uint64_t size = disks_[index]->sizeBytes();
    for (uint64_t block : marked_) {
      const uint64_t offset = block * kBlock;
      const uint64_t length = std::min(kBlock, size - offset);
      Range* last = pending_.empty() ? nullptr : &pending_.back();
      if (last != nullptr && last->disk == index && !last->zero && last->offset + last->length == offset)
        last->length += length;
      else
        pending_.push_back({index, offset, length, false});
    }
  }
}

uint64_t DiskMirror::pendingBlocks() const {
  uint64_t bytes = 0;
  for (const Range& range : pending_)
    if (!range.zero) bytes += range.length;
  return (bytes + storage::DirtyTrackedDisk::kBlockBytes - 1) / storage::DirtyTrackedDisk::kBlockBytes;
}

// ---- DiskMirrorTarget ----

Result<std::vector<AnnouncedDisk>> parseDiskManifest(std::span<const uint8_t> record) {
  Fields fields(record);
  auto kind = fields.get<uint8_t>();
  if (!kind) return kind.error();
  if (*kind != kManifest) return Error{fmt::format("the source's first disk record is of kind {}, not a manifest", *kind)};
  auto count = fields.get<uint32_t>();
  if (!count) return count.error();
  if (*count > machine::virt::kVirtioSlots) return Error{fmt::format("the source announces {} disks", *count)};
  std::vector<AnnouncedDisk> disks;
  for (uint32_t index = 0; index < *count; ++index) {
    auto size = fields.get<uint64_t>();
    if (!size) return size.error();
    auto format = fields.get<uint8_t>();
    if (!format) return format.error();
    if (*size == 0 || *size % 512 != 0 || *size > kMaxAnnouncedDiskBytes)
      return Error{fmt::format("disk {}: the source announces {} bytes (a multiple of 512 up to {} expected)", index,
                               *size, kMaxAnnouncedDiskBytes)};
    if (*format != kRaw && *format != kQcow2)
      return Error{fmt::format("disk {}: the source announces unknown format {}", index, *format)};
    disks.push_back({*size, *format == kQcow2 ? storage::ImageFormat::Qcow2 : storage::ImageFormat::Raw});
  }
  if (!fields.rest().empty()) return Error{"the disk manifest has bytes past its last disk"};
  return disks;
}

Result<void> DiskMirrorTarget::apply(std::span<const uint8_t> record) {
  Fields fields(record);
  auto kind = fields.get<uint8_t>();
  if (!kind) return kind.error();
  if (*kind == kManifest) {
    if (mirrored_) return Error{"a second disk manifest"};
    auto announced = parseDiskManifest(record);
    if (!announced) return announced.error();
    if (announced->size() != disks_.size())
      return Error{fmt::format("the source mirrors {} disks, this VM has {} (--disk)", announced->size(), disks_.size())};
    for (size_t index = 0; index < disks_.size(); ++index) {
      if ((*announced)[index].sizeBytes != disks_[index]->sizeBytes())
        return Error{fmt::format("disk {}: the source's is {} bytes, this one {} bytes", index,
                                 (*announced)[index].sizeBytes, disks_[index]->sizeBytes())};
      if (disks_[index]->readOnly()) return Error{fmt::format("disk {} is read-only here: the mirror cannot write it", index)};
    }
    mirrored_ = true;
    return {};
  }
  if (*kind == kFlush) return mirrored_ ? finish() : Error{"a disk flush before the disk manifest"};
  if (*kind != kData && *kind != kZero) return Error{fmt::format("unknown disk record kind {}", *kind)};
  if (!mirrored_) return Error{"disk data before the disk manifest"};
  auto disk = fields.get<uint32_t>();
  if (!disk) return disk.error();
  auto offset = fields.get<uint64_t>();
  if (!offset) return offset.error();
  if (*disk >= disks_.size()) return Error{fmt::format("disk record for disk {} of {}", *disk, disks_.size())};
  storage::BlockDevice& target = *disks_[*disk];
  uint64_t length = 0;
  std::span<const uint8_t> data;
  if (*kind == kZero) {
    auto zeroLength = fields.get<uint64_t>();
    if (!zeroLength) return zeroLength.error();
    length = *zeroLength;
  } else {
    auto crc = fields.get<uint32_t>();
    if (!crc) return crc.error();
    data = fields.rest();
    length = data.size();
    if (storage::crc32c(data.data(), data.size()) != *crc)
      return Error{fmt::format("disk {} at {}: chunk checksum mismatch", *disk, *offset)};
  }
  if (*offset > target.sizeBytes() || length > target.sizeBytes() - *offset)
    return Error{fmt::format("disk {}: {} bytes at {} are past its end ({} bytes)", *disk, length, *offset, target.sizeBytes())};
  auto written = *kind == kZero ? storage::writeZeroesSync(target, loop_, *offset, length)
                                : storage::writeSync(target, loop_, *offset, data.data(), data.size());
  if (!written) return Error{fmt::format("writing disk {} at {}: {}", *disk, *offset, written.error().message)};
  return {};
}

Result<void> DiskMirrorTarget::finish() {
  for (size_t index = 0; index < disks_.size(); ++index)
    if (auto flushed = storage::flushSync(*disks_[index], loop_); !flushed)
      return Error{fmt::format("flushing disk {}: {}", index, flushed.error().message)};
  return {};
}

}  // namespace strata::vmm::migration
