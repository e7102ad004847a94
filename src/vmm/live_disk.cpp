#include "vmm/live_disk.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <future>

#include <fmt/core.h>

#include "base/unique_fd.h"
#include "storage/disk_image.h"
#include "storage/image_create.h"
#include "storage/qcow2_image.h"
#include "storage/volume/pool.h"
#include "storage/volume/volume_disk.h"

namespace strata::vmm {
namespace {

// A paused VM's loop answers at once; one that stopped never does, and the
// caller must not wait for it forever.
constexpr auto kLoopAnswerTimeout = std::chrono::minutes(2);

// Runs work on loop and waits for its result. work must own what it uses:
// after a timeout it may still run.
Result<void> onLoop(EventLoop& loop, std::function<void(std::function<void(Result<void>)>)> work) {
  auto answer = std::make_shared<std::promise<Result<void>>>();
  auto future = answer->get_future();
  loop.post([work = std::move(work), answer] { work([answer](Result<void> result) { answer->set_value(std::move(result)); }); });
  if (future.wait_for(kLoopAnswerTimeout) != std::future_status::ready) return Error{"the VM's I/O loop did not answer"};
  return future.get();
}

std::string fileName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

std::string overlayPathFor(const std::string& image, const std::string& snapshotName) {
  std::string name = fileName(image);
  std::string directory = image.substr(0, image.size() - name.size());
  size_t dot = name.rfind('.');
  if (dot != std::string::npos && dot > 0) name.resize(dot);
  return directory + name + "." + snapshotName + ".qcow2";
}

LiveDisk::LiveDisk(const DiskConfig& config, std::unique_ptr<storage::DiskImage> image, EventLoop& loop)
    : config_(config), image_(std::move(image)), loop_(loop), serial_(image_->serial()) {
  config_.format = image_->format();
}

LiveDisk::LiveDisk(const DiskConfig& config, std::shared_ptr<storage::volume::Pool> pool, std::string volumeName,
                   std::unique_ptr<storage::BlockDevice> volume, EventLoop& loop)
    : config_(config),
      volume_(std::move(volume)),
      pool_(std::move(pool)),
      volumeName_(std::move(volumeName)),
      loop_(loop),
      serial_(volume_->serial()) {
  const storage::volume::VolumeRecord* record = pool_->record().findVolume(volumeName_);
  thin_ = record && record->type == storage::volume::VolumeType::Thin;
}

Result<std::unique_ptr<LiveDisk>> LiveDisk::openVolume(const DiskConfig& config, EventLoop& loop) {
  return openRestoredVolume(config, "", false, loop);
}

Result<std::unique_ptr<LiveDisk>> LiveDisk::openRestoredVolume(const DiskConfig& recorded, const std::string& copyName,
                                                               bool mustCopy, EventLoop& loop) {
  auto spec = storage::volume::parseVolumeDiskSpec(recorded.path);
  if (!spec) return spec.error();
  auto pool = storage::volume::openPoolOfDisk(*spec, {.readOnly = recorded.readOnly}, loop);
  if (!pool) return pool.error();
  DiskConfig disk = recorded;
  std::string volumeName = spec->volume;
  if (!copyName.empty()) {
    const storage::volume::VolumeRecord* volume = (*pool)->record().findVolume(volumeName);
    if (volume && volume->type == storage::volume::VolumeType::Thin) {
      volumeName += "." + copyName;
      if (auto copied = (*pool)->snapshotVolume(spec->volume, volumeName, true); !copied)
        return Error{fmt::format("disk {}: its thin clone {}: {}", recorded.path, volumeName, copied.error().message)};
      disk.path = fmt::format("pool:{}/{}", spec->pool, volumeName);
    } else if (mustCopy) {
      return Error{fmt::format("--clone: disk {} is a pool volume but not a thin one, which has no linked clones",
                               recorded.path)};
    }
  }
  auto device = (*pool)->openVolume(volumeName, disk.readOnly);
  if (!device) {
    if (volumeName != spec->volume) (void)(*pool)->removeVolume(volumeName);
    return Error{fmt::format("disk {}: {}", disk.path, device.error().message)};
  }
  std::unique_ptr<LiveDisk> opened(new LiveDisk(disk, std::move(*pool), volumeName, std::move(*device), loop));
  if (volumeName != spec->volume) opened->markMadeForThisVm();
  return opened;
}

Result<void> LiveDisk::removeMadeForThisVm() {
  if (!madeForThisVm_) return {};
  madeForThisVm_ = false;
  if (pool_) return pool_->removeVolume(volumeName_);
  if (::unlink(config_.path.c_str()) != 0) return errnoError(config_.path);
  return {};
}

void LiveDisk::readv(uint64_t offset, std::vector<iovec> buffers, storage::IoCompletion done) {
  active().readv(offset, std::move(buffers), std::move(done));
}

void LiveDisk::writev(uint64_t offset, std::vector<iovec> buffers, storage::IoCompletion done) {
  active().writev(offset, std::move(buffers), std::move(done));
}

void LiveDisk::flush(storage::IoCompletion done) { active().flush(std::move(done)); }

void LiveDisk::discard(uint64_t offset, uint64_t length, storage::IoCompletion done) {
  active().discard(offset, length, std::move(done));
}

void LiveDisk::writeZeroes(uint64_t offset, uint64_t length, storage::IoCompletion done) {
  active().writeZeroes(offset, length, std::move(done));
}

Result<void> LiveDisk::flushNow() {
  if (config_.readOnly) return {};
  auto flushed = onLoop(loop_, [this](auto answer) {
    active().flush([answer](int result) {
      answer(result == 0 ? Result<void>{} : Result<void>(errnoError("flush", -result)));
    });
  });
  if (!flushed) return Error{fmt::format("disk {}: {}", config_.path, flushed.error().message)};
  return {};
}

Result<void> LiveDisk::reopenImage() {
  if (!image_) return {};
  storage::DiskOptions options;
  options.readOnly = config_.readOnly;
  options.format = config_.format;
  auto reopened = storage::openDiskImage(config_.path, options, loop_);
  if (!reopened) return Error{fmt::format("disk {}: {}", config_.path, reopened.error().message)};
  image_ = std::move(*reopened);
  return {};
}

Result<DiskConfig> LiveDisk::keepForSnapshot(const std::string& snapshotName) {
  if (config_.readOnly) return config_;
  if (image_) return addOverlay(snapshotName);
  if (thin_) return snapshotThinVolume(snapshotName);
  return config_;
}

Result<DiskConfig> LiveDisk::snapshotThinVolume(const std::string& snapshotName) {
  const std::string snapshot = volumeName_ + "." + snapshotName;
  // The pool's management runs its loop until the metadata is written, on the
  // loop thread: nothing else drives that loop meanwhile.
  auto taken = onLoop(loop_, [pool = pool_, volume = volumeName_, snapshot](auto answer) {
    answer(pool->snapshotVolume(volume, snapshot, false));
  });
  if (!taken) return Error{fmt::format("disk {}: its thin snapshot {}: {}", config_.path, snapshot, taken.error().message)};
  DiskConfig recorded = config_;
  recorded.path = fmt::format("pool:{}/{}", pool_->name(), snapshot);
  return recorded;
}

Result<DiskConfig> LiveDisk::addOverlay(const std::string& snapshotName) {
  const DiskConfig recorded = config_;
  const std::string path = overlayPathFor(config_.path, snapshotName);
  auto file = std::make_shared<UniqueFd>(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!file->valid()) return errnoError(fmt::format("disk {}: its snapshot overlay {}", config_.path, path));
  storage::CreateOptions options;
  options.format = storage::ImageFormat::Qcow2;
  options.size = image_->sizeBytes();
  options.backingFile = fileName(config_.path);  // beside it, so the pair can move together
  options.backingFormat = image_->format();
  if (auto written = storage::writeNewImage(file->get(), path, options); !written)
    return Error{fmt::format("disk {}: {} (remove that file)", config_.path, written.error().message)};
  auto opened = onLoop(loop_, [this, path, file](auto answer) {
    auto overlay = storage::Qcow2Image::openOverlay(path, std::move(*file), image_, loop_);
    if (!overlay) return answer(overlay.error());
    image_ = std::move(*overlay);
    answer({});
  });
  if (!opened) return Error{fmt::format("disk {}: {}", config_.path, opened.error().message)};
  config_.path = path;
  config_.format = storage::ImageFormat::Qcow2;
  return recorded;
}

}  // namespace strata::vmm
