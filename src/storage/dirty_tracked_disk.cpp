#include "storage/dirty_tracked_disk.h"

namespace strata::storage {

DirtyTrackedDisk::DirtyTrackedDisk(std::unique_ptr<BlockDevice> disk)
    : disk_(std::move(disk)), dirty_(disk_->sizeBytes()) {}

// Marking at completion, not submission: a copy that read the block before the
// change landed is then always followed by a mark, so the block goes again.
IoCompletion DirtyTrackedDisk::marking(uint64_t offset, uint64_t length, IoCompletion done) {
  return [this, offset, length, done = std::move(done)](int result) {
    dirty_.markRange(offset, length);
    done(result);
  };
}

void DirtyTrackedDisk::readv(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) {
  disk_->readv(offset, std::move(buffers), std::move(done));
}

void DirtyTrackedDisk::writev(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) {
  uint64_t length = 0;
  for (const iovec& buffer : buffers) length += buffer.iov_len;
  disk_->writev(offset, std::move(buffers), marking(offset, length, std::move(done)));
}

void DirtyTrackedDisk::flush(IoCompletion done) { disk_->flush(std::move(done)); }

void DirtyTrackedDisk::discard(uint64_t offset, uint64_t length, IoCompletion done) {
  disk_->discard(offset, length, marking(offset, length, std::move(done)));
}

void DirtyTrackedDisk::writeZeroes(uint64_t offset, uint64_t length, IoCompletion done) {
  disk_->writeZeroes(offset, length, marking(offset, length, std::move(done)));
}

}  // namespace strata::storage
