#include "virtio/blk.h"

#include <cerrno>
#include <climits>
#include <cstring>
#include <memory>

#include "virtio/iovec_util.h"
#include "virtio/virtio_spec.h"

namespace strata::virtio {
namespace {

struct RequestHeader {
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};
static_assert(sizeof(RequestHeader) == 16);

struct DiscardSegment {
  uint64_t sector;
  uint32_t numSectors;
  uint32_t flags;
};
static_assert(sizeof(DiscardSegment) == 16);

template <typename T>
void put(std::vector<uint8_t>& config, size_t offset, T value) {
  std::memcpy(config.data() + offset, &value, sizeof value);
}

}  // namespace

struct VirtioBlk::Request {
  uint16_t head = 0;
  uint64_t generation = 0;
  uint8_t* statusByte = nullptr;
  uint32_t bytesWritten = 0;  // for the used ring: data written to the driver + status
  unsigned pendingParts = 0;  // backend operations still outstanding
  int firstError = 0;
};

VirtioBlk::VirtioBlk(storage::BlockDevice& disk) : disk_(disk) {
  // struct virtio_blk_config (spec 5.2.4), up to write_zeroes_may_unmap.
  std::vector<uint8_t> config(60, 0);
  put<uint64_t>(config, 0, disk.sizeBytes() / blk::kSectorSize);  // capacity
  put<uint32_t>(config, 12, blk::kQueueSize - 2);                 // seg_max: queue minus header and status
  put<uint32_t>(config, 20, blk::kSectorSize);                    // blk_size
  put<uint32_t>(config, 36, blk::kMaxDiscardSectors);
  put<uint32_t>(config, 40, blk::kMaxDiscardSegments);
  put<uint32_t>(config, 44, blk::kDiscardAlignmentSectors);
  put<uint32_t>(config, 48, blk::kMaxDiscardSectors);    // max_write_zeroes_sectors
  put<uint32_t>(config, 52, blk::kMaxDiscardSegments);   // max_write_zeroes_seg
  put<uint8_t>(config, 56, 1);                           // write_zeroes_may_unmap
  setConfigSpace(std::move(config));
}

uint32_t VirtioBlk::deviceId() const { return kDeviceIdBlock; }

uint64_t VirtioBlk::deviceFeatures() const {
  uint64_t features = featureBit(blk::kFeatureSegMax) | featureBit(blk::kFeatureBlockSize) |
                      featureBit(blk::kFeatureFlush);
  if (disk_.readOnly()) features |= featureBit(blk::kFeatureReadOnly);
  else features |= featureBit(blk::kFeatureDiscard) | featureBit(blk::kFeatureWriteZeroes);
  return features;
}

void VirtioBlk::onQueueNotify(unsigned queue) {
  if (queue != 0) return;
  while (auto chain = popChain(0)) startRequest(std::move(*chain));
}

uint8_t VirtioBlk::statusForErrno(int result) {
  if (result == 0) return blk::kStatusOk;
  if (result == -EOPNOTSUPP || result == -ENOTSUP) return blk::kStatusUnsupported;
  return blk::kStatusIoError;
}

void VirtioBlk::startRequest(DescriptorChain chain) {
  // The status byte is the chain's last writable byte; without one we cannot
  // even report an error, so the driver is broken.
  if (chain.writableBytes == 0) {
    host().failDevice("block request has no writable status byte");
    return;
  }
  auto request = std::make_shared<Request>();
  request->head = chain.head;
  request->generation = generation();
  uint64_t dataInBytes = chain.writableBytes - 1;
  {
    auto last = sliceIovecs(chain.writable, dataInBytes, 1);
    request->statusByte = static_cast<uint8_t*>(last.at(0).iov_base);
  }
  request->bytesWritten = 1;
  ++inFlight_;

  RequestHeader header;
  if (copyFromIovecs(chain.readable, 0, &header, sizeof header) != sizeof header) {
    complete(request, blk::kStatusIoError);
    return;
  }
  uint64_t payloadBytes = chain.readableBytes - sizeof header;
  const uint64_t diskBytes = disk_.sizeBytes();
  // True if [sector, sector + bytes) lies inside the disk, without overflow.
  auto inRange = [diskBytes](uint64_t sector, uint64_t bytes) {
    if (sector > diskBytes / blk::kSectorSize) return false;
    uint64_t offset = sector * blk::kSectorSize;
    return bytes <= diskBytes - offset;
  };
  auto onDone = [this, request](int result) { complete(request, statusForErrno(result)); };
  // Hands a read or write of bytes [from, from + bytes) of the chain part to
  // the disk; an empty one completes at once.
  auto transfer = [&](bool write, const std::vector<iovec>& chainPart, uint64_t from, uint64_t bytes) {
    if (bytes == 0) return complete(request, blk::kStatusOk);
    auto buffers = sliceIovecs(chainPart, from, bytes);
    // Backends hand iovec lists to preadv/io_uring, which refuse more than IOV_MAX.
    if (buffers.size() > IOV_MAX) return complete(request, blk::kStatusIoError);
    request->pendingParts = 1;
    const uint64_t offset = header.sector * blk::kSectorSize;
    if (write) disk_.writev(offset, std::move(buffers), onDone);
    else disk_.readv(offset, std::move(buffers), onDone);
  };

  switch (header.type) {
    case blk::kTypeIn: {
      if (dataInBytes % blk::kSectorSize != 0 || !inRange(header.sector, dataInBytes)) {
        complete(request, blk::kStatusIoError);
        return;
      }
      request->bytesWritten = static_cast<uint32_t>(std::min<uint64_t>(dataInBytes + 1, UINT32_MAX));
      transfer(false, chain.writable, 0, dataInBytes);
      return;
    }
    case blk::kTypeOut: {
      if (disk_.readOnly() || payloadBytes % blk::kSectorSize != 0 || !inRange(header.sector, payloadBytes)) {
        complete(request, blk::kStatusIoError);
        return;
      }
      transfer(true, chain.readable, sizeof header, payloadBytes);
      return;
    }
    case blk::kTypeFlush:
      request->pendingParts = 1;
      disk_.flush(onDone);
      return;
    case blk::kTypeGetId: {
      char id[blk::kIdBytes] = {};
      std::string serial = disk_.serial();
      std::memcpy(id, serial.data(), std::min<size_t>(serial.size(), sizeof id));  // not NUL-terminated at 20
      size_t copied = copyToIovecs(chain.writable, 0, id, std::min<uint64_t>(sizeof id, dataInBytes));
      request->bytesWritten = static_cast<uint32_t>(copied + 1);
      complete(request, blk::kStatusOk);
      return;
    }
    case blk::kTypeDiscard:
    case blk::kTypeWriteZeroes: {
      // Gather the segments now: the guest may rewrite them while we wait.
      std::vector<DiscardSegment> segments;
      if (payloadBytes == 0 || payloadBytes % sizeof(DiscardSegment) != 0 ||
          payloadBytes / sizeof(DiscardSegment) > blk::kMaxDiscardSegments) {
        complete(request, blk::kStatusIoError);
        return;
      }
      segments.resize(payloadBytes / sizeof(DiscardSegment));
      copyFromIovecs(chain.readable, sizeof header, segments.data(), payloadBytes);
      bool discard = header.type == blk::kTypeDiscard;
      if (disk_.readOnly()) {
        complete(request, blk::kStatusIoError);
        return;
      }
      // Spec 5.2.6.2: unknown flags, or UNMAP on a discard, are unsupported;
      // a range past max_*_sectors or the disk end is an I/O error.
      for (const auto& s : segments) {
        if ((s.flags & ~blk::kSegmentFlagUnmap) != 0 || (discard && (s.flags & blk::kSegmentFlagUnmap))) {
          complete(request, blk::kStatusUnsupported);
          return;
        }
      }
      for (const auto& s : segments) {
        if (s.numSectors > blk::kMaxDiscardSectors || !inRange(s.sector, uint64_t{s.numSectors} * blk::kSectorSize)) {
          complete(request, blk::kStatusIoError);
          return;
        }
      }
      auto onPartDone = [this, request](int result) {
        if (result != 0 && request->firstError == 0) request->firstError = result;
        if (--request->pendingParts == 0) complete(request, statusForErrno(request->firstError));
      };
      // Count every part before submitting any, in case a backend completes inline.
      request->pendingParts = static_cast<unsigned>(segments.size()) + 1;
      for (const auto& s : segments) {
        uint64_t offset = s.sector * blk::kSectorSize;
        uint64_t length = uint64_t{s.numSectors} * blk::kSectorSize;
        if (discard) disk_.discard(offset, length, onPartDone);
        else disk_.writeZeroes(offset, length, onPartDone);
      }
      onPartDone(0);  // drop the submission guard
      return;
    }
    default:
      complete(request, blk::kStatusUnsupported);
      return;
  }
}

void VirtioBlk::complete(const std::shared_ptr<Request>& request, uint8_t status) {
  --inFlight_;
  // Work started before a reset or failure must not touch the rings again.
  if (request->generation == generation() && !host().deviceFailed()) {
    *request->statusByte = status;
    host().queue(0).pushUsed(request->head, request->bytesWritten);
    host().notifyUsed(0);
  }
  if (inFlight_ == 0 && !idleWaiters_.empty()) {
    auto waiters = std::move(idleWaiters_);
    idleWaiters_.clear();
    for (auto& idle : waiters) idle();
  }
}

void VirtioBlk::whenIdle(std::function<void()> idle) {
  if (inFlight_ == 0) idle();
  else idleWaiters_.push_back(std::move(idle));
}

}  // namespace strata::virtio
