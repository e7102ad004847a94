#include "storage/raw_image.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <algorithm>
#include <climits>
#include <cstring>

namespace strata::storage {

namespace {

// A page-aligned block of zeroes, large enough for chunked zero writes even
// with O_DIRECT.
constexpr size_t kZeroChunk = 1 << 20;
const uint8_t* zeroChunk() {
  alignas(4096) static const uint8_t zeroes[kZeroChunk] = {};
  return zeroes;
}

// Buffered reads from this size up run on io_uring's worker threads.
constexpr size_t kReadOffloadBytes = 128 << 10;

size_t totalLength(const std::vector<iovec>& buffers) {
  size_t total = 0;
  for (const auto& b : buffers) total += b.iov_len;
  return total;
}

// Drops the first `bytes` bytes from the front of an iovec list.
void advance(std::vector<iovec>& buffers, size_t& first, size_t bytes) {
  while (bytes > 0 && first < buffers.size()) {
    iovec& b = buffers[first];
    size_t step = std::min(bytes, b.iov_len);
    b.iov_base = static_cast<uint8_t*>(b.iov_base) + step;
    b.iov_len -= step;
    bytes -= step;
    if (b.iov_len == 0) ++first;
  }
  while (first < buffers.size() && buffers[first].iov_len == 0) ++first;
}

}  // namespace

// One read or write in flight. Transfers live on an intrusive list owned by the
// image (so teardown with requests in the kernel frees them) and are recycled:
// the steady state allocates nothing per request.
struct RawImage::Transfer {
  bool write = false;
  uint64_t offset = 0;
  std::vector<iovec> buffers;
  size_t first = 0;  // index of the first buffer with bytes left
  IoCompletion done;
  Transfer* prev = nullptr;
  Transfer* next = nullptr;
};

Result<UniqueFd> openImageFile(const std::string& path, int flags) {
  UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC | O_NONBLOCK));
  if (!fd.valid()) return errnoError(path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errnoError(path);
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) return Error{path + ": not a regular file or block device"};
  if (::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK) != 0) return errnoError(path);
  return fd;
}

Result<std::shared_ptr<IoRing>> makeImageRing(EventLoop& loop, bool direct, unsigned entries) {
  auto ring = IoRing::create(loop, entries);
  if (!ring) return ring.error();
  // Through the page cache a large read is a memcpy; several in parallel on the
  // kernel's workers beat copying them one by one on the loop thread. With
  // O_DIRECT the device does the work and inline submission is already async.
  if (!direct) (*ring)->setReadOffloadThreshold(kReadOffloadBytes);
  return std::shared_ptr<IoRing>(std::move(*ring));
}

Result<std::unique_ptr<RawImage>> RawImage::open(const std::string& path, const RawOpenOptions& options,
                                                 EventLoop& loop) {
  int flags = options.readOnly ? O_RDONLY : O_RDWR;
  if (options.direct) flags |= O_DIRECT;
  auto opened = openImageFile(path, flags);
  if (!opened) return opened.error();
  return open(path, std::move(*opened), options, loop);
}

Result<std::unique_ptr<RawImage>> RawImage::open(const std::string& path, UniqueFd fd, const RawOpenOptions& options,
                                                 EventLoop& loop) {
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errnoError(path);
  std::unique_ptr<RawImage> image(new RawImage(path, options, std::move(fd), loop));
  if (S_ISBLK(st.st_mode)) {
    uint64_t bytes = 0;
    if (::ioctl(image->fd_.get(), BLKGETSIZE64, &bytes) != 0) return errnoError(path + ": BLKGETSIZE64");
    image->size_ = bytes;
    image->blockDevice_ = true;
  } else if (S_ISREG(st.st_mode)) {
    image->size_ = static_cast<uint64_t>(st.st_size);
  } else {
    return Error{path + ": not a regular file or block device"};
  }
  image->ring_ = options.ring;
  if (!image->ring_) {
    auto ring = makeImageRing(loop, options.direct);
    if (!ring) return Error{path + ": " + ring.error().message};
    image->ring_ = std::move(*ring);
  }
  image->options_.ring = nullptr;  // held once, in ring_
  return image;
}

RawImage::RawImage(std::string path, RawOpenOptions options, UniqueFd fd, EventLoop& loop)
    : path_(std::move(path)), options_(options), fd_(std::move(fd)), loop_(loop) {}

RawImage::~RawImage() {
  // Operations still in the kernel are waited for (their transfers go after
  // that), without their callbacks; a shared ring goes on serving the others.
  if (ring_) ring_->forget(fd_.get());
  ring_.reset();
  while (liveTransfers_ != nullptr) {
    Transfer* next = liveTransfers_->next;
    delete liveTransfers_;
    liveTransfers_ = next;
  }
}

std::string RawImage::serial() const {
  // virtio-blk IDs are 20 bytes; the file name's tail is the most distinctive part.
  std::string name = path_.substr(path_.find_last_of('/') + 1);
  return name.size() > 20 ? name.substr(name.size() - 20) : name;
}

void RawImage::completeLater(IoCompletion done, int result) {
  // Never complete inside the submitting call: callers may not expect re-entry.
  loop_.post([done = std::move(done), result] { done(result); });
}

IoCompletion RawImage::tracked(IoCompletion done) {
  ++inFlight_;
  return [this, done = std::move(done)](int result) {
    --inFlight_;
    done(result);
  };
}

RawImage::Transfer* RawImage::startTransfer(bool write, uint64_t offset, std::vector<iovec> buffers,
                                            IoCompletion done) {
  Transfer* transfer;
  if (!spareTransfers_.empty()) {
    transfer = spareTransfers_.back().release();
    spareTransfers_.pop_back();
  } else {
    transfer = new Transfer;
  }
  transfer->write = write;
  transfer->offset = offset;
  transfer->buffers = std::move(buffers);
  transfer->first = 0;
  transfer->done = std::move(done);
  transfer->prev = nullptr;
  transfer->next = liveTransfers_;
  if (liveTransfers_ != nullptr) liveTransfers_->prev = transfer;
  liveTransfers_ = transfer;
  ++inFlight_;
  advance(transfer->buffers, transfer->first, 0);
  return transfer;
}

void RawImage::finishTransfer(Transfer* transfer, int result) {
  (transfer->prev != nullptr ? transfer->prev->next : liveTransfers_) = transfer->next;
  if (transfer->next != nullptr) transfer->next->prev = transfer->prev;
  IoCompletion done = std::move(transfer->done);
  transfer->buffers.clear();
  spareTransfers_.emplace_back(transfer);
  --inFlight_;
  done(result);
}

bool RawImage::checkRange(uint64_t offset, uint64_t length, bool write, IoCompletion& done) {
  if (write && options_.readOnly) {
    completeLater(std::move(done), -EROFS);
    return false;
  }
  bool overflow = offset + length < offset;
  if (overflow || (!options_.growable && offset + length > size_)) {
    completeLater(std::move(done), -EINVAL);
    return false;
  }
  return true;
}

bool RawImage::wouldChangeProbedFormat(uint64_t offset, const std::vector<iovec>& buffers) const {
  if (!options_.keepProbedFormat || offset >= kFormatProbeBytes || totalLength(buffers) == 0) return false;
  // What the probed bytes become is known only when the write covers all of
  // them; a write to part of them is refused (QEMU refuses those too).
  if (offset != 0) return true;
  uint8_t head[kFormatProbeBytes];
  size_t got = 0;
  for (const auto& b : buffers) {
    size_t step = std::min(b.iov_len, sizeof head - got);
    std::memcpy(head + got, b.iov_base, step);
    got += step;
    if (got == sizeof head) break;
  }
  if (got < sizeof head) return true;
  return probeFormatOfHead(head) != ImageFormat::Raw;
}

void RawImage::readv(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) {
  if (!checkRange(offset, totalLength(buffers), false, done)) return;
  submitTransfer(startTransfer(false, offset, std::move(buffers), std::move(done)));
}

void RawImage::writev(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) {
  uint64_t length = totalLength(buffers);
  if (!checkRange(offset, length, true, done)) return;
  if (wouldChangeProbedFormat(offset, buffers)) return completeLater(std::move(done), -EPERM);
  if (options_.growable) size_ = std::max(size_, offset + length);
  submitTransfer(startTransfer(true, offset, std::move(buffers), std::move(done)));
}

void RawImage::submitTransfer(Transfer* transfer) {
  if (transfer->first >= transfer->buffers.size()) {
    // Nothing to transfer; still complete from the loop, never inside the call.
    loop_.post([this, transfer] { finishTransfer(transfer, 0); });
    return;
  }
  unsigned count = static_cast<unsigned>(std::min<size_t>(transfer->buffers.size() - transfer->first, IOV_MAX));
  const iovec* iov = transfer->buffers.data() + transfer->first;
  // Two pointers: small enough for std::function to store without allocating.
  auto onResult = [this, transfer](int result) { onTransferResult(transfer, result); };
  if (transfer->write) {
    ring_->writev(fd_.get(), iov, count, transfer->offset, onResult);
  } else {
    ring_->readv(fd_.get(), iov, count, transfer->offset, onResult);
  }
}

void RawImage::onTransferResult(Transfer* transfer, int result) {
  if (result == -EINTR || result == -EAGAIN) return submitTransfer(transfer);
  if (result < 0) return finishTransfer(transfer, result);
  if (result == 0) {
    if (transfer->write) return finishTransfer(transfer, -EIO);
    // End of file: the rest of the request reads as zeroes.
    for (size_t i = transfer->first; i < transfer->buffers.size(); ++i) {
      std::memset(transfer->buffers[i].iov_base, 0, transfer->buffers[i].iov_len);
    }
    return finishTransfer(transfer, 0);
  }
  transfer->offset += static_cast<uint64_t>(result);
  advance(transfer->buffers, transfer->first, static_cast<size_t>(result));
  if (transfer->first >= transfer->buffers.size()) return finishTransfer(transfer, 0);
  submitTransfer(transfer);  // short transfer: continue where it stopped
}

void RawImage::flush(IoCompletion done) {
  if (options_.readOnly) return completeLater(std::move(done), 0);
  ring_->fdatasync(fd_.get(), [done = tracked(std::move(done))](int result) { done(result < 0 ? result : 0); });
}

void RawImage::discard(uint64_t offset, uint64_t length, IoCompletion done) {
  if (!checkRange(offset, length, true, done)) return;
  if (length == 0) return completeLater(std::move(done), 0);
  ring_->fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length,
                   [done = tracked(std::move(done))](int result) {
                     // Discard is advisory: a file system that cannot punch holes just keeps the data.
                     if (result == -EOPNOTSUPP || result == -ENOTSUP) result = 0;
                     done(result < 0 ? result : 0);
                   });
}

void RawImage::writeZeroes(uint64_t offset, uint64_t length, IoCompletion done) {
  if (!checkRange(offset, length, true, done)) return;
  if (length == 0) return completeLater(std::move(done), 0);
  if (options_.growable) size_ = std::max(size_, offset + length);
  done = tracked(std::move(done));
  if (zeroRangeUnsupported_) return writeZeroesByWriting(offset, length, std::move(done));
  int mode = FALLOC_FL_ZERO_RANGE | (options_.growable ? 0 : FALLOC_FL_KEEP_SIZE);
  ring_->fallocate(fd_.get(), mode, offset, length,
                   [this, offset, length, done = std::move(done)](int result) mutable {
                     if (result == -EOPNOTSUPP || result == -ENOTSUP || result == -EINVAL) {
                       zeroRangeUnsupported_ = true;
                       return writeZeroesByWriting(offset, length, std::move(done));
                     }
                     done(result < 0 ? result : 0);
                   });
}

void RawImage::writeZeroesByWriting(uint64_t offset, uint64_t length, IoCompletion done) {
  // One request per chunk, chained, so a huge range never pins a huge iovec list.
  // `done` is already tracked; the chunk's own transfer is counted while it runs.
  size_t chunk = static_cast<size_t>(std::min<uint64_t>(length, kZeroChunk));
  std::vector<iovec> buffers{iovec{const_cast<uint8_t*>(zeroChunk()), chunk}};
  submitTransfer(startTransfer(true, offset, std::move(buffers),
                               [this, offset, length, chunk, done = std::move(done)](int result) mutable {
                                 if (result < 0 || chunk == length) return done(result);
                                 writeZeroesByWriting(offset + chunk, length - chunk, std::move(done));
                               }));
}

Result<Extent> RawImage::blockStatus(uint64_t offset, uint64_t length) {
  if (length == 0 || offset >= size_) return Error{path_ + ": block status past the end of the image"};
  length = std::min(length, size_ - offset);
  if (blockDevice_) return Extent{ExtentKind::Data, length};
  off_t data = ::lseek(fd_.get(), static_cast<off_t>(offset), SEEK_DATA);
  if (data < 0) {
    if (errno == ENXIO) return Extent{ExtentKind::Zero, length};  // a hole up to the end
    return Extent{ExtentKind::Data, length};                     // no SEEK_DATA support: assume data
  }
  if (static_cast<uint64_t>(data) > offset) {
    return Extent{ExtentKind::Zero, std::min<uint64_t>(length, static_cast<uint64_t>(data) - offset)};
  }
  off_t hole = ::lseek(fd_.get(), static_cast<off_t>(offset), SEEK_HOLE);
  if (hole < 0 || static_cast<uint64_t>(hole) <= offset) return Extent{ExtentKind::Data, length};
  return Extent{ExtentKind::Data, std::min<uint64_t>(length, static_cast<uint64_t>(hole) - offset)};
}

uint64_t RawImage::allocatedBytes() const {
  struct stat st {};
  if (::fstat(fd_.get(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

}  // namespace strata::storage
