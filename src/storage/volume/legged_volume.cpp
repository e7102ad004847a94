#include "storage/volume/legged_volume.h"

#include <fmt/core.h>

#include <algorithm>
#include <set>

#include "storage/volume/io_util.h"

namespace strata::storage::volume {

LeggedVolume::LeggedVolume(std::shared_ptr<Pool> pool, VolumeRecord record, bool readOnly)
    : pool_(std::move(pool)), record_(std::move(record)), readOnly_(readOnly) {
  redundant_ = isRedundant(record_.type);
  sets_ = dataLegCount(record_);
  mirrors_ = static_cast<uint32_t>(record_.legs.size()) / sets_;
}

std::string LeggedVolume::serial() const { return fmt::format("{}/{}", pool_->name(), record_.name).substr(0, 20); }

std::vector<LeggedVolume::Piece> LeggedVolume::mapRange(uint64_t offset, uint64_t length) const {
  std::vector<Piece> pieces;
  if (sets_ == 1) {
    if (length > 0) pieces.push_back({0, offset, 0, length});
    return pieces;
  }
  uint64_t stripe = record_.stripeSize;
  uint64_t done = 0;
  while (done < length) {
    uint64_t at = offset + done;
    uint64_t chunk = at / stripe;
    uint64_t within = at % stripe;
    uint64_t n = std::min(stripe - within, length - done);
    pieces.push_back({static_cast<uint32_t>(chunk % sets_), (chunk / sets_) * stripe + within, done, n});
    done += n;
  }
  return pieces;
}

bool LeggedVolume::rangeOk(uint64_t offset, uint64_t length, bool write, IoCompletion& done) {
  if (write && readOnly_) {
    completeSoon(pool_->loop(), std::move(done), -EROFS);
    return false;
  }
  if (offset > record_.sizeBytes || length > record_.sizeBytes - offset) {
    completeSoon(pool_->loop(), std::move(done), -EINVAL);
    return false;
  }
  return true;
}

void LeggedVolume::readv(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) {
  uint64_t length = iovecLength(buffers);
  if (!rangeOk(offset, length, false, done)) return;
  auto join = IoJoin::make(pool_->loop(), std::move(done));
  for (const Piece& piece : mapRange(offset, length)) {
    uint32_t first = mirrors_ > 1 ? nextReadCopy_++ % mirrors_ : 0;
    readPiece(piece, sliceIovecs(buffers, piece.requestOffset, piece.length), 0, first, join->add());
  }
  join->arm();
}

void LeggedVolume::readPiece(const Piece& piece, std::vector<iovec> buffers, uint32_t attempt, uint32_t first,
                             IoCompletion done) {
  // Try copies in turn, starting at `first`, skipping those that cannot serve.
  for (; attempt < mirrors_; ++attempt) {
    uint32_t copy = (first + attempt) % mirrors_;
    const Leg& l = leg(piece.set, copy);
    if (!legAvailable(*pool_, l, pool_->extentSize(), LegOp::Read, redundant_, piece.legOffset, piece.length)) continue;
    legTransfer(*pool_, l, LegOp::Read, redundant_, piece.legOffset, piece.length, buffers,
                [this, piece, buffers, attempt, first, done = std::move(done)](int result) mutable {
                  if (result >= 0 || attempt + 1 >= mirrors_) return done(result);
                  readPiece(piece, std::move(buffers), attempt + 1, first, std::move(done));
                });
    return;
  }
  completeSoon(pool_->loop(), std::move(done), -EIO);
}

void LeggedVolume::writePiece(const Piece& piece, LegOp op, std::vector<iovec> buffers, IoCompletion done) {
  struct Tally {
    uint32_t ok = 0;
    int error = -EIO;
  };
  auto tally = std::make_shared<Tally>();
  auto join = IoJoin::make(pool_->loop(), [tally, done = std::move(done)](int) {
    done(tally->ok > 0 ? 0 : tally->error);
  });
  for (uint32_t copy = 0; copy < mirrors_; ++copy) {
    const Leg& l = leg(piece.set, copy);
    if (!legAvailable(*pool_, l, pool_->extentSize(), op, redundant_, piece.legOffset, piece.length)) continue;
    legTransfer(*pool_, l, op, redundant_, piece.legOffset, piece.length, buffers,
                [tally, sub = join->add()](int result) {
                  if (result >= 0)
                    ++tally->ok;
                  else
                    tally->error = result;
                  sub(0);
                });
  }
  join->arm();
}

void LeggedVolume::writev(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) {
  uint64_t length = iovecLength(buffers);
  if (!rangeOk(offset, length, true, done)) return;
  auto join = IoJoin::make(pool_->loop(), std::move(done));
  for (const Piece& piece : mapRange(offset, length))
    writePiece(piece, LegOp::Write, sliceIovecs(buffers, piece.requestOffset, piece.length), join->add());
  join->arm();
}

void LeggedVolume::writeZeroes(uint64_t offset, uint64_t length, IoCompletion done) {
  if (!rangeOk(offset, length, true, done)) return;
  auto join = IoJoin::make(pool_->loop(), std::move(done));
  for (const Piece& piece : mapRange(offset, length)) writePiece(piece, LegOp::Zero, {}, join->add());
  join->arm();
}

void LeggedVolume::discard(uint64_t offset, uint64_t length, IoCompletion done) {
  if (!rangeOk(offset, length, true, done)) return;
  // Copies must stay identical, and a discarded range need not read back as
  // zeroes on every device, so redundant volumes zero instead.
  LegOp op = redundant_ ? LegOp::Zero : LegOp::Discard;
  auto join = IoJoin::make(pool_->loop(), std::move(done));
  for (const Piece& piece : mapRange(offset, length)) writePiece(piece, op, {}, join->add());
  join->arm();
}

void LeggedVolume::flush(IoCompletion done) {
  std::set<uint32_t> pvs;
  for (const Leg& l : record_.legs)
    for (const ExtentRun& run : l.runs) pvs.insert(run.pv);
  auto join = IoJoin::make(pool_->loop(), [this, done = std::move(done)](int result) {
    if (redundant_) result = pool_->health(record_).failed ? -EIO : 0;
    done(result);
  });
  for (uint32_t pv : pvs) {
    if (!pool_->pvPresent(pv)) continue;
    pool_->pvImage(pv)->flush([this, pv, sub = join->add()](int result) {
      if (result < 0 && redundant_) pool_->reportPvFailure(pv, result);
      sub(result);
    });
  }
  join->arm();
}

}  // namespace strata::storage::volume
