#include "storage/volume/legged_volume.h"

#include <fmt/core.h>

#include <algorithm>

#include "storage/volume/io_util.h"

namespace strata::storage::volume {

LeggedVolume::LeggedVolume(std::shared_ptr<Pool> pool, VolumeRecord record, bool readOnly)
    : pool_(std::move(pool)), record_(std::move(record)), readOnly_(readOnly) {
  redundant_ = isRedundant(record_.type);
  sets_ = dataLegCount(record_);
  mirrors_ = static_cast<uint32_t>(record_.legs.size()) / sets_;
  pvs_ = volumePvs(record_);
  if (redundant_) lock_ = pool_->volumeLock(record_.id);
}

std::string LeggedVolume::serial() const { return volumeSerial(*pool_, record_); }

bool LeggedVolume::rangeOk(uint64_t offset, uint64_t length, bool write, IoCompletion& done) {
  return requestAllowed(pool_->loop(), record_.sizeBytes, readOnly_, offset, length, write, done);
}

template <typename Fn>
void LeggedVolume::dispatch(uint64_t offset, uint64_t length, std::vector<iovec> buffers, IoCompletion done, Fn fn) {
  if (length == 0) return completeSoon(pool_->loop(), std::move(done), 0);
  uint64_t stripe = record_.stripeSize;
  if (sets_ == 1) return fn(Piece{0, offset, length, std::move(buffers)}, std::move(done));
  uint64_t chunk = offset / stripe;
  if (chunk == (offset + length - 1) / stripe) {
    // Inside one chunk: the request goes through as it is.
    Piece piece{static_cast<uint32_t>(chunk % sets_), (chunk / sets_) * stripe + offset % stripe, length,
                std::move(buffers)};
    return fn(std::move(piece), std::move(done));
  }
  LegGather gather(buffers, sets_);
  for (uint64_t at = offset, end = offset + length; at < end;) {
    chunk = at / stripe;
    uint64_t within = at % stripe;
    uint64_t n = std::min(stripe - within, end - at);
    gather.add(static_cast<uint32_t>(chunk % sets_), (chunk / sets_) * stripe + within, n);
    at += n;
  }
  auto join = IoJoin::make(pool_->loop(), std::move(done));
  for (Piece& piece : gather.pieces()) fn(std::move(piece), join->add());
  join->arm();
}

void LeggedVolume::readv(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) {
  uint64_t length = iovecLength(buffers);
  if (!rangeOk(offset, length, false, done)) return;
  dispatch(offset, length, std::move(buffers), std::move(done), [this](Piece&& piece, IoCompletion&& pieceDone) {
    uint32_t first = mirrors_ > 1 ? nextReadCopy_++ % mirrors_ : 0;
    readPiece(std::move(piece), first, std::move(pieceDone));
  });
}

void LeggedVolume::readPiece(Piece piece, uint32_t first, IoCompletion done) {
  if (mirrors_ == 1) {
    if (!legSubmit(*pool_, leg(piece.leg, 0), LegOp::Read, redundant_, piece.legOffset, piece.length,
                   std::move(piece.buffers), std::move(done)))
      completeSoon(pool_->loop(), std::move(done), -EIO);
    return;
  }
  ReadAttempt* read = reads_.take();
  read->piece = std::move(piece);
  read->first = first;
  read->done = std::move(done);
  readCopy(read, 0);
}

void LeggedVolume::readCopy(ReadAttempt* read, uint32_t attempt) {
  // Copies in turn from `first`, skipping those that cannot serve.
  const Piece& piece = read->piece;
  for (; attempt < mirrors_; ++attempt) {
    read->attempt = attempt;
    auto buffers = piece.buffers;  // kept for a retry on the next copy
    auto retry = [this, read](int result) {
      if (result >= 0 || read->attempt + 1 >= mirrors_) return finishRead(read, result);
      readCopy(read, read->attempt + 1);
    };
    if (legSubmit(*pool_, leg(piece.leg, (read->first + attempt) % mirrors_), LegOp::Read, redundant_,
                  piece.legOffset, piece.length, std::move(buffers), std::move(retry)))
      return;
  }
  completeSoon(pool_->loop(), [this, read](int result) { finishRead(read, result); }, -EIO);
}

void LeggedVolume::finishRead(ReadAttempt* read, int result) {
  IoCompletion done = std::move(read->done);
  reads_.give(read);
  done(result);
}

void LeggedVolume::writePiece(Piece piece, LegOp op, IoCompletion done) {
  if (!redundant_) {
    if (!legSubmit(*pool_, leg(piece.leg, 0), op, redundant_, piece.legOffset, piece.length, std::move(piece.buffers),
                   std::move(done)))
      completeSoon(pool_->loop(), std::move(done), -EIO);
    return;
  }
  // Mark the regions of every copy first (a crash mid-write leaves the
  // copies differing only where the bitmaps say), and while a rebuild or
  // scrub runs, hold the range so it cannot copy a half-written block.
  std::vector<PvRange> ranges;
  for (uint32_t copy = 0; copy < mirrors_; ++copy)
    legPvRanges(leg(piece.leg, copy), pool_->extentSize(), piece.legOffset, piece.length, ranges);
  auto start = [this, piece = std::move(piece), op, ranges](IoCompletion finished) mutable {
    pool_->writeIntent().begin(ranges, [this, piece = std::move(piece), op, ranges,
                                        finished = std::move(finished)]() mutable {
      writeCopies(std::move(piece), op, [this, ranges, finished = std::move(finished)](int result) {
        pool_->writeIntent().end(ranges);
        finished(result);
      });
    });
  };
  if (!lock_->maintenanceActive()) {
    lock_->unlockedStarted();
    return start([lock = lock_, done = std::move(done)](int result) {
      lock->unlockedEnded();
      done(result);
    });
  }
  uint64_t lo = piece.legOffset, hi = piece.legOffset + piece.length;
  lock_->acquire(lo, hi, [lock = lock_, start = std::move(start), done = std::move(done)](RangeLock::Ticket ticket) mutable {
    start([lock, ticket, done = std::move(done)](int result) {
      lock->release(ticket);
      done(result);
    });
  });
}

void LeggedVolume::writeCopies(Piece piece, LegOp op, IoCompletion done) {
  // Every writable copy; the piece succeeds while at least one does.
  struct Tally {
    uint32_t pending = 1;  // the submission token
    uint32_t ok = 0;
    int error = -EIO;
    IoCompletion done;
    void settle() {
      if (--pending == 0) done(ok > 0 ? 0 : error);
    }
  };
  auto tally = std::make_shared<Tally>();
  tally->done = std::move(done);
  for (uint32_t copy = 0; copy < mirrors_; ++copy) {
    auto buffers = piece.buffers;
    ++tally->pending;
    bool submitted = legSubmit(*pool_, leg(piece.leg, copy), op, redundant_, piece.legOffset, piece.length,
                               std::move(buffers), [tally](int result) {
                                 if (result >= 0)
                                   ++tally->ok;
                                 else
                                   tally->error = result;
                                 tally->settle();
                               });
    if (!submitted) --tally->pending;
  }
  if (tally->pending == 1) {
    // No copy could take it: still complete asynchronously.
    tally->pending = 0;
    return completeSoon(pool_->loop(), std::move(tally->done), -EIO);
  }
  tally->settle();
}

void LeggedVolume::writev(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) {
  uint64_t length = iovecLength(buffers);
  if (!rangeOk(offset, length, true, done)) return;
  dispatch(offset, length, std::move(buffers), std::move(done), [this](Piece&& piece, IoCompletion&& pieceDone) {
    writePiece(std::move(piece), LegOp::Write, std::move(pieceDone));
  });
}

void LeggedVolume::writeZeroes(uint64_t offset, uint64_t length, IoCompletion done) {
  if (!rangeOk(offset, length, true, done)) return;
  dispatch(offset, length, {}, std::move(done), [this](Piece&& piece, IoCompletion&& pieceDone) {
    writePiece(std::move(piece), LegOp::Zero, std::move(pieceDone));
  });
}

void LeggedVolume::discard(uint64_t offset, uint64_t length, IoCompletion done) {
  if (!rangeOk(offset, length, true, done)) return;
  // Copies must stay identical, and a discarded range need not read back as
  // zeroes on every device, so redundant volumes zero instead.
  LegOp op = redundant_ ? LegOp::Zero : LegOp::Discard;
  dispatch(offset, length, {}, std::move(done), [this, op](Piece&& piece, IoCompletion&& pieceDone) {
    writePiece(std::move(piece), op, std::move(pieceDone));
  });
}

void LeggedVolume::flush(IoCompletion done) {
  pool_->flushPvs(pvs_, redundant_, [this, done = std::move(done)](int result) {
    if (redundant_) result = pool_->health(record_).failed ? -EIO : 0;
    done(result);
  });
}

}  // namespace strata::storage::volume
