// LiveDisk: one disk of a running VM as its virtio-blk device sees it, across
// snapshots. I/O goes to the image the VM writes now; a snapshot puts a new
// qcow2 overlay on top of an image file (QEMU's and libvirt's external
// snapshot), so the image below stays as the snapshot recorded it, and takes a
// read-only thin snapshot of a thin pool volume. Other pool volumes and
// read-only disks pass through unchanged.
#pragma once

#include <memory>
#include <string>

#include "base/event_loop.h"
#include "base/result.h"
#include "storage/block_device.h"
#include "storage/disk_image.h"
#include "vmm/vm_config.h"

namespace strata::storage::volume {
class Pool;
}

namespace strata::vmm {

class LiveDisk final : public storage::BlockDevice {
 public:
  // An image file opened from `config` (its format as opened is recorded).
  LiveDisk(const DiskConfig& config, std::unique_ptr<storage::DiskImage> image, EventLoop& loop);
  // A pool volume ("pool:NAME/VOLUME"), its pool held open by this process.
  static Result<std::unique_ptr<LiveDisk>> openVolume(const DiskConfig& config, EventLoop& loop);
  // A restored VM's pool volume. A thin volume (the read-only thin snapshot a
  // snapshot recorded) gets a writable thin clone, "<volume>.<copyName>", that
  // the VM runs on, so every restore starts from the same contents. Any other
  // volume is opened as it is (only a snapshot taken without resuming left it
  // as recorded), unless `mustCopy` (a --clone), which refuses it.
  static Result<std::unique_ptr<LiveDisk>> openRestoredVolume(const DiskConfig& recorded, const std::string& copyName,
                                                              bool mustCopy, EventLoop& loop);

  // storage::BlockDevice, forwarded on the loop thread. The serial stays the
  // first image's: the guest's disk keeps its identity under an overlay.
  uint64_t sizeBytes() const override { return active().sizeBytes(); }
  bool readOnly() const override { return active().readOnly(); }
  std::string serial() const override { return serial_; }
  void readv(uint64_t offset, std::vector<iovec> buffers, storage::IoCompletion done) override;
  void writev(uint64_t offset, std::vector<iovec> buffers, storage::IoCompletion done) override;
  void flush(storage::IoCompletion done) override;
  void discard(uint64_t offset, uint64_t length, storage::IoCompletion done) override;
  void writeZeroes(uint64_t offset, uint64_t length, storage::IoCompletion done) override;
  storage::DiskImage* image() override { return image_.get(); }

  // What the VM writes now: after a snapshot, its overlay (a qcow2 image).
  const DiskConfig& current() const { return config_; }
  // False for a writable pool volume that is not thin: a snapshot cannot keep
  // its contents while the VM runs on.
  bool snapshotKeepsContents() const { return image_ || config_.readOnly || thin_; }

  // The rest: from another thread while the VM is paused (no request in flight).
  // Every write so far is durable (the restore of a snapshot reads the image).
  Result<void> flushNow();
  // An image file opened again, its tables read afresh: an incoming VM on shared
  // storage opened its disks while the source still wrote to them, and reads them
  // again once the source paused and flushed. On the thread that drives the loop,
  // before the VM runs. Pool volumes are not shared between processes.
  Result<void> reopenImage();
  // Keeps the disk's contents as they are now for snapshot `snapshotName` and
  // returns the disk the snapshot records. A writable image file gets a new
  // qcow2 overlay beside it, "<image without extension>.<snapshotName>.qcow2",
  // and every write from now on goes there; the image below (recorded) is only
  // read from then on. Created here (the loop thread's Landlock rules admit no
  // new file), opened on the loop thread. A writable thin volume gets a
  // read-only thin snapshot, "<volume>.<snapshotName>" (recorded), taken on
  // the loop thread; the VM writes on to its volume. Others are recorded as they are.
  Result<DiskConfig> keepForSnapshot(const std::string& snapshotName);

  // The overlay file or thin clone this disk runs on was made for this VM (a
  // restore's); removeMadeForThisVm() deletes it again when the restore is
  // refused before the VM ran (on the thread that drives the loop, before the sandbox).
  void markMadeForThisVm() { madeForThisVm_ = true; }
  Result<void> removeMadeForThisVm();

 private:
  LiveDisk(const DiskConfig& config, std::shared_ptr<storage::volume::Pool> pool, std::string volumeName,
           std::unique_ptr<storage::BlockDevice> volume, EventLoop& loop);
  storage::BlockDevice& active() const { return image_ ? static_cast<storage::BlockDevice&>(*image_) : *volume_; }
  Result<DiskConfig> addOverlay(const std::string& snapshotName);
  Result<DiskConfig> snapshotThinVolume(const std::string& snapshotName);

  DiskConfig config_;
  std::unique_ptr<storage::DiskImage> image_;    // an image file, or
  std::unique_ptr<storage::BlockDevice> volume_;  // a pool volume,
  std::shared_ptr<storage::volume::Pool> pool_;   // in this pool
  std::string volumeName_;
  bool thin_ = false;
  bool madeForThisVm_ = false;
  EventLoop& loop_;
  std::string serial_;
};

// "<dir>/<stem>.<snapshotName>.qcow2" for image "<dir>/<stem>.<ext>".
std::string overlayPathFor(const std::string& image, const std::string& snapshotName);

}  // namespace strata::vmm
