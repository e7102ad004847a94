// Small building blocks for the volume engines' asynchronous fan-out: slicing
// a request's iovecs, copying between iovecs and flat buffers, page-aligned
// scratch buffers (valid for O_DIRECT), and IoJoin, which completes a parent
// request once all its sub-requests have, with the first error seen.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#include "base/event_loop.h"
#include "base/node_pool.h"
#include "storage/block_device.h"

namespace strata::storage::volume {

// At most this many iovecs per vectored request (the kernel's UIO_MAXIOV).
inline constexpr size_t kMaxIovecs = 1024;

size_t iovecLength(const std::vector<iovec>& buffers);
// The sub-list covering bytes [offset, offset+length) of buffers.
std::vector<iovec> sliceIovecs(const std::vector<iovec>& buffers, uint64_t offset, uint64_t length);
void copyFromIovecs(const std::vector<iovec>& buffers, uint64_t offset, void* out, size_t length);
void copyToIovecs(const std::vector<iovec>& buffers, uint64_t offset, const void* in, size_t length);
void zeroIovecs(const std::vector<iovec>& buffers, uint64_t offset, size_t length);

// Walks a request's buffers front to back, handing out consecutive ranges.
class IovecCursor {
 public:
  explicit IovecCursor(const std::vector<iovec>& buffers) : buffers_(buffers) {}
  // Appends the iovecs covering the next `length` bytes to out.
  void take(uint64_t length, std::vector<iovec>& out);
  // How many iovecs take(length) would append.
  size_t countFor(uint64_t length) const;

 private:
  const std::vector<iovec>& buffers_;
  size_t index_ = 0;
  size_t offset_ = 0;  // within buffers_[index_]
};

struct FreeDeleter {
  void operator()(uint8_t* p) const { std::free(p); }
};
using AlignedBuffer = std::unique_ptr<uint8_t[], FreeDeleter>;
// Zero-filled, 4 KiB aligned; length is rounded up to 4 KiB.
AlignedBuffer makeAlignedBuffer(size_t length);
// The same, not zeroed: for scratch space that is filled before it is used.
AlignedBuffer makeScratchBuffer(size_t length);

// Completes `done` (never inside the submitting call) after every add()ed
// completion ran and arm() was called; passes the first negative result.
class IoJoin : public std::enable_shared_from_this<IoJoin> {
 public:
  static std::shared_ptr<IoJoin> make(EventLoop& loop, IoCompletion done);
  IoCompletion add();
  void fail(int error) {
    if (error < 0 && result_ == 0) result_ = error;
  }
  void arm();
  int result() const { return result_; }

 private:
  IoJoin(EventLoop& loop, IoCompletion done) : loop_(loop), done_(std::move(done)) {}
  void release();
  EventLoop& loop_;
  IoCompletion done_;
  int pending_ = 1;  // the arm() token
  int result_ = 0;
  bool armedWithWork_ = false;
};

// Splits [offset, offset+length) into pieces of at most pieceBytes and calls
// submit(pieceOffset, pieceLength, pieceDone) for them in order, keeping at
// most `window` in flight: a request of any length holds bounded memory.
// done gets the first negative result once every submitted piece completed
// (no new piece starts after an error).
using PieceSubmit = std::function<void(uint64_t offset, uint64_t length, IoCompletion done)>;
void submitInPieces(EventLoop& loop, uint64_t offset, uint64_t length, uint64_t pieceBytes, unsigned window,
                    PieceSubmit submit, IoCompletion done);

// The checks every volume makes first: false (done completed with -EROFS or
// -EINVAL from the loop) for a write to a read-only device or a range past its end.
bool requestAllowed(EventLoop& loop, uint64_t sizeBytes, bool readOnly, uint64_t offset, uint64_t length, bool write,
                    IoCompletion& done);

// Runs done(result) on the next loop iteration.
void completeSoon(EventLoop& loop, IoCompletion done, int result);

}  // namespace strata::storage::volume
