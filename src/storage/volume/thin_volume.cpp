#include "storage/volume/thin_volume.h"

#include <fmt/core.h>

#include "storage/volume/io_util.h"

namespace strata::storage::volume {

ThinVolume::ThinVolume(std::shared_ptr<ThinPoolEngine> engine, uint32_t device, uint64_t sizeBytes, bool readOnly,
                       EventLoop& loop)
    : engine_(std::move(engine)), device_(device), size_(sizeBytes), readOnly_(readOnly), loop_(loop) {}

std::string ThinVolume::serial() const { return fmt::format("thin-{}-{}", engine_->name(), device_).substr(0, 20); }

bool ThinVolume::rangeOk(uint64_t offset, uint64_t length, bool write, IoCompletion& done) {
  return requestAllowed(loop_, size_, readOnly_, offset, length, write, done);
}

void ThinVolume::readv(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) {
  if (!rangeOk(offset, iovecLength(buffers), false, done)) return;
  engine_->read(device_, offset, std::move(buffers), std::move(done));
}

void ThinVolume::writev(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) {
  if (!rangeOk(offset, iovecLength(buffers), true, done)) return;
  engine_->write(device_, offset, std::move(buffers), std::move(done));
}

void ThinVolume::flush(IoCompletion done) {
  if (readOnly_) return completeSoon(loop_, std::move(done), 0);
  engine_->flush(std::move(done));
}

void ThinVolume::discard(uint64_t offset, uint64_t length, IoCompletion done) {
  if (!rangeOk(offset, length, true, done)) return;
  engine_->zero(device_, offset, length, true, std::move(done));
}

void ThinVolume::writeZeroes(uint64_t offset, uint64_t length, IoCompletion done) {
  if (!rangeOk(offset, length, true, done)) return;
  engine_->zero(device_, offset, length, false, std::move(done));
}

}  // namespace strata::storage::volume
