#include "storage/volume/io_util.h"

#include <algorithm>

namespace strata::storage::volume {

size_t iovecLength(const std::vector<iovec>& buffers) {
  size_t total = 0;
  for (const auto& b : buffers) total += b.iov_len;
  return total;
}

std::vector<iovec> sliceIovecs(const std::vector<iovec>& buffers, uint64_t offset, uint64_t length) {
  std::vector<iovec> out;
  for (const auto& b : buffers) {
    if (length == 0) break;
    if (offset >= b.iov_len) {
      offset -= b.iov_len;
      continue;
    }
    size_t take = static_cast<size_t>(std::min<uint64_t>(b.iov_len - offset, length));
    out.push_back(iovec{static_cast<uint8_t*>(b.iov_base) + offset, take});
    length -= take;
    offset = 0;
  }
  return out;
}

void IovecCursor::take(uint64_t length, std::vector<iovec>& out) {
  while (length > 0 && index_ < buffers_.size()) {
    const iovec& b = buffers_[index_];
    size_t n = static_cast<size_t>(std::min<uint64_t>(b.iov_len - offset_, length));
    if (n > 0) out.push_back(iovec{static_cast<uint8_t*>(b.iov_base) + offset_, n});
    length -= n;
    offset_ += n;
    if (offset_ == b.iov_len) {
      ++index_;
      offset_ = 0;
    }
  }
}

size_t IovecCursor::countFor(uint64_t length) const {
  size_t count = 0, index = index_, offset = offset_;
  while (length > 0 && index < buffers_.size()) {
    uint64_t n = std::min<uint64_t>(buffers_[index].iov_len - offset, length);
    if (n > 0) ++count;
    length -= n;
    ++index;
    offset = 0;
  }
  return count;
}

namespace {
template <typename Fn>
void forEachPiece(const std::vector<iovec>& buffers, uint64_t offset, size_t length, Fn fn) {
  size_t done = 0;
  for (const auto& b : buffers) {
    if (done == length) break;
    if (offset >= b.iov_len) {
      offset -= b.iov_len;
      continue;
    }
    size_t take = static_cast<size_t>(std::min<uint64_t>(b.iov_len - offset, length - done));
    fn(static_cast<uint8_t*>(b.iov_base) + offset, take, done);
    done += take;
    offset = 0;
  }
}
}  // namespace

void copyFromIovecs(const std::vector<iovec>& buffers, uint64_t offset, void* out, size_t length) {
  auto dst = static_cast<uint8_t*>(out);
  forEachPiece(buffers, offset, length, [&](uint8_t* p, size_t n, size_t at) { std::memcpy(dst + at, p, n); });
}

void copyToIovecs(const std::vector<iovec>& buffers, uint64_t offset, const void* in, size_t length) {
  auto src = static_cast<const uint8_t*>(in);
  forEachPiece(buffers, offset, length, [&](uint8_t* p, size_t n, size_t at) { std::memcpy(p, src + at, n); });
}

void zeroIovecs(const std::vector<iovec>& buffers, uint64_t offset, size_t length) {
  forEachPiece(buffers, offset, length, [&](uint8_t* p, size_t n, size_t) { std::memset(p, 0, n); });
}

AlignedBuffer makeScratchBuffer(size_t length) {
  size_t rounded = std::max<size_t>(4096, (length + 4095) & ~size_t{4095});
  auto p = static_cast<uint8_t*>(std::aligned_alloc(4096, rounded));
  if (!p) throw std::bad_alloc();
  return AlignedBuffer(p);
}

AlignedBuffer makeAlignedBuffer(size_t length) {
  auto buffer = makeScratchBuffer(length);
  std::memset(buffer.get(), 0, std::max<size_t>(4096, (length + 4095) & ~size_t{4095}));
  return buffer;
}

std::shared_ptr<IoJoin> IoJoin::make(EventLoop& loop, IoCompletion done) {
  return std::shared_ptr<IoJoin>(new IoJoin(loop, std::move(done)));
}

IoCompletion IoJoin::add() {
  ++pending_;
  armedWithWork_ = true;
  return [self = shared_from_this()](int result) {
    self->fail(result);
    self->release();
  };
}

void IoJoin::arm() {
  if (!armedWithWork_) {
    // Nothing was submitted: still complete asynchronously.
    --pending_;
    completeSoon(loop_, std::move(done_), result_);
    return;
  }
  release();
}

void IoJoin::release() {
  if (--pending_ == 0) {
    auto done = std::move(done_);
    done(result_);
  }
}

namespace {
struct PieceWindow : std::enable_shared_from_this<PieceWindow> {
  uint64_t next, end, pieceBytes;
  unsigned window, inFlight = 0;
  int result = 0;
  PieceSubmit submit;
  IoCompletion done;

  void fill() {
    while (inFlight < window && next < end && result == 0) {
      uint64_t n = std::min(pieceBytes, end - next);
      uint64_t at = next;
      next += n;
      ++inFlight;
      submit(at, n, [self = shared_from_this()](int r) {
        --self->inFlight;
        if (r < 0 && self->result == 0) self->result = r;
        self->fill();
      });
    }
    if (inFlight == 0 && done) {
      auto finished = std::move(done);
      done = nullptr;
      finished(result);
    }
  }
};
}  // namespace

void submitInPieces(EventLoop& loop, uint64_t offset, uint64_t length, uint64_t pieceBytes, unsigned window,
                    PieceSubmit submit, IoCompletion done) {
  if (length == 0) return completeSoon(loop, std::move(done), 0);
  auto pieces = std::make_shared<PieceWindow>();
  pieces->next = offset;
  pieces->end = offset + length;
  pieces->pieceBytes = pieceBytes;
  pieces->window = window;
  pieces->submit = std::move(submit);
  pieces->done = std::move(done);
  pieces->fill();
}

bool requestAllowed(EventLoop& loop, uint64_t sizeBytes, bool readOnly, uint64_t offset, uint64_t length, bool write,
                    IoCompletion& done) {
  if (write && readOnly) {
    completeSoon(loop, std::move(done), -EROFS);
    return false;
  }
  if (offset > sizeBytes || length > sizeBytes - offset) {
    completeSoon(loop, std::move(done), -EINVAL);
    return false;
  }
  return true;
}

void completeSoon(EventLoop& loop, IoCompletion done, int result) {
  loop.post([done = std::move(done), result] { done(result); });
}

}  // namespace strata::storage::volume
