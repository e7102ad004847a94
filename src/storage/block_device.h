// BlockDevice: the interface every virtual disk backend implements (raw files,
// qcow2, logical volumes, NBD clients later) and that virtio-blk and the NBD
// server consume. Asynchronous and vectored: requests are submitted from, and
// completions delivered on, the EventLoop thread the device was opened with.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace strata::storage {

class DiskImage;

// Receives 0 on success or a negative errno (-EIO, -ENOSPC, -EROFS, ...).
using IoCompletion = std::function<void(int result)>;

class BlockDevice {
 public:
  virtual ~BlockDevice() = default;

  virtual uint64_t sizeBytes() const = 0;
  virtual bool readOnly() const = 0;
  // A short stable identifier for the guest (virtio-blk GET_ID, NBD export name).
  virtual std::string serial() const = 0;

  virtual void readv(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) = 0;
  virtual void writev(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) = 0;
  // Completes once every write completed before it is durable.
  virtual void flush(IoCompletion done) = 0;
  virtual void discard(uint64_t offset, uint64_t length, IoCompletion done) = 0;
  virtual void writeZeroes(uint64_t offset, uint64_t length, IoCompletion done) = 0;

  // The image file requests go to, for callers that need its allocation status
  // (disk mirroring); null for volumes and devices that are not image files.
  virtual DiskImage* image() { return nullptr; }
};

}  // namespace strata::storage
