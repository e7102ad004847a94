// RawImage: a DiskImage over a plain file or host block device, byte for byte.
// I/O is asynchronous and vectored through an IoRing; short transfers are
// resumed, and reads past the end of a regular file return zeroes. Qcow2Image
// uses a growable RawImage as the file it stores clusters in.
#pragma once

#include <sys/uio.h>

#include <memory>
#include <string>
#include <vector>

#include "base/event_loop.h"
#include "base/unique_fd.h"
#include "storage/disk_image.h"
#include "storage/io_ring.h"

namespace strata::storage {

// Opens an image file without blocking (a FIFO or device node named by an
// untrusted backing-file reference must not hang us) and refuses anything but a
// regular file or a block device. `flags` are open(2) flags; O_NONBLOCK is
// cleared again before the descriptor is returned.
Result<UniqueFd> openImageFile(const std::string& path, int flags);

struct RawOpenOptions {
  bool readOnly = false;
  bool direct = false;
  // Writes may extend the file (a container format's backing store), so no
  // request is refused for lying past the current size.
  bool growable = false;
  // The format was probed, not named: writes that would make the image probe
  // as another format fail with -EPERM (as in QEMU), so whoever writes the
  // disk (a guest, an NBD client) cannot turn it into, say, a qcow2 image
  // whose backing file is any host file, for the next open to follow.
  bool keepProbedFormat = false;
  // A ring shared with other images on the same loop (makeImageRing), so the
  // requests of all of them go to the kernel in one batch; null: its own.
  std::shared_ptr<IoRing> ring = nullptr;
};

// An IoRing for images on loop, set up for buffered or O_DIRECT files.
Result<std::shared_ptr<IoRing>> makeImageRing(EventLoop& loop, bool direct, unsigned entries = 128);

class RawImage final : public DiskImage {
 public:
  static Result<std::unique_ptr<RawImage>> open(const std::string& path, const RawOpenOptions& options,
                                                EventLoop& loop);
  // The same on fd, path opened by the caller with the access options ask for
  // (a thread whose sandbox may not open the path itself).
  static Result<std::unique_ptr<RawImage>> open(const std::string& path, UniqueFd fd, const RawOpenOptions& options,
                                                EventLoop& loop);
  ~RawImage() override;

  uint64_t sizeBytes() const override { return size_; }
  bool readOnly() const override { return options_.readOnly; }
  std::string serial() const override;

  void readv(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) override;
  void writev(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) override;
  void flush(IoCompletion done) override;
  void discard(uint64_t offset, uint64_t length, IoCompletion done) override;
  void writeZeroes(uint64_t offset, uint64_t length, IoCompletion done) override;

  ImageFormat format() const override { return ImageFormat::Raw; }
  const std::string& path() const override { return path_; }
  Result<Extent> blockStatus(uint64_t offset, uint64_t length) override;
  uint64_t allocatedBytes() const override;

  int fd() const { return fd_.get(); }
  bool isBlockDevice() const { return blockDevice_; }
  EventLoop& loop() { return loop_; }
  // Requests submitted and not yet completed.
  unsigned inFlight() const { return inFlight_; }

 private:
  struct Transfer;
  RawImage(std::string path, RawOpenOptions options, UniqueFd fd, EventLoop& loop);
  bool checkRange(uint64_t offset, uint64_t length, bool write, IoCompletion& done);
  bool wouldChangeProbedFormat(uint64_t offset, const std::vector<iovec>& buffers) const;
  void completeLater(IoCompletion done, int result);
  Transfer* startTransfer(bool write, uint64_t offset, std::vector<iovec> buffers, IoCompletion done);
  void submitTransfer(Transfer* transfer);
  void onTransferResult(Transfer* transfer, int result);
  void finishTransfer(Transfer* transfer, int result);
  void writeZeroesByWriting(uint64_t offset, uint64_t length, IoCompletion done);
  IoCompletion tracked(IoCompletion done);

  std::string path_;
  RawOpenOptions options_;
  UniqueFd fd_;
  EventLoop& loop_;
  std::shared_ptr<IoRing> ring_;
  uint64_t size_ = 0;
  bool blockDevice_ = false;
  bool zeroRangeUnsupported_ = false;
  unsigned inFlight_ = 0;
  Transfer* liveTransfers_ = nullptr;                  // submitted, not yet completed
  std::vector<std::unique_ptr<Transfer>> spareTransfers_;  // completed, ready for reuse
};

}  // namespace strata::storage
