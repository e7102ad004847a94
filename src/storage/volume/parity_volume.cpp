#include "storage/volume/parity_volume.h"

#include <fmt/core.h>

#include <algorithm>
#include <set>

#include "storage/volume/io_util.h"
#include "storage/volume/parity.h"

namespace strata::storage::volume {

namespace {
constexpr uint64_t kSliceAlign = 4096;
constexpr int kMaxAttempts = 3;
}  // namespace

struct ParityVolume::RowOp {
  bool write = false;
  uint64_t row = 0;
  uint64_t start = 0;   // request part within the row's data bytes
  uint64_t length = 0;
  std::vector<iovec> buffers;
  uint64_t lo = 0, hi = 0;  // the column slice, 4 KiB aligned
  std::vector<AlignedBuffer> slices;  // per leg
  int attempt = 0;
  bool locked = false;
  IoCompletion done;

  // The in-chunk range data chunk i contributes; empty when untouched.
  std::pair<uint64_t, uint64_t> chunkRange(uint32_t i, uint64_t stripe) const {
    uint64_t chunkStart = i * stripe;
    uint64_t a = std::max(start, chunkStart), b = std::min(start + length, chunkStart + stripe);
    if (a >= b) return {0, 0};
    return {a - chunkStart, b - chunkStart};
  }
};

ParityVolume::ParityVolume(std::shared_ptr<Pool> pool, VolumeRecord record, bool readOnly)
    : pool_(std::move(pool)), record_(std::move(record)), readOnly_(readOnly) {
  legs_ = static_cast<uint32_t>(record_.legs.size());
  stripe_ = record_.stripeSize;
}

std::string ParityVolume::serial() const { return fmt::format("{}/{}", pool_->name(), record_.name).substr(0, 20); }

bool ParityVolume::rangeOk(uint64_t offset, uint64_t length, bool write, IoCompletion& done) {
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

bool ParityVolume::legReadable(uint32_t leg, uint64_t legOffset, uint64_t length) const {
  return legAvailable(*pool_, record_.legs[leg], pool_->extentSize(), LegOp::Read, true, legOffset, length);
}
bool ParityVolume::legWritable(uint32_t leg, uint64_t legOffset, uint64_t length) const {
  return legAvailable(*pool_, record_.legs[leg], pool_->extentSize(), LegOp::Write, true, legOffset, length);
}

void ParityVolume::lockRow(uint64_t row, std::function<void()> run) {
  auto it = lockedRows_.find(row);
  if (it != lockedRows_.end()) {
    it->second.push_back(std::move(run));
    return;
  }
  lockedRows_[row];
  run();
}

void ParityVolume::unlockRow(uint64_t row) {
  auto it = lockedRows_.find(row);
  if (it == lockedRows_.end()) return;
  if (it->second.empty()) {
    lockedRows_.erase(it);
    return;
  }
  auto next = std::move(it->second.front());
  it->second.pop_front();
  pool_->loop().post(std::move(next));
}

void ParityVolume::submitRows(bool write, uint64_t offset, std::vector<iovec> buffers, IoCompletion done) {
  uint64_t length = iovecLength(buffers);
  uint64_t rowBytes = (legs_ - 1) * stripe_;
  auto join = IoJoin::make(pool_->loop(), std::move(done));
  uint64_t at = 0;
  while (at < length) {
    auto op = std::make_shared<RowOp>();
    op->write = write;
    op->row = (offset + at) / rowBytes;
    op->start = (offset + at) % rowBytes;
    op->length = std::min(rowBytes - op->start, length - at);
    op->buffers = sliceIovecs(buffers, at, op->length);
    op->done = join->add();
    at += op->length;
    if (write)
      lockedRowOp(std::move(op));
    else
      directRead(std::move(op));
  }
  join->arm();
}

void ParityVolume::readv(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) {
  if (!rangeOk(offset, iovecLength(buffers), false, done)) return;
  submitRows(false, offset, std::move(buffers), std::move(done));
}

void ParityVolume::writev(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) {
  if (!rangeOk(offset, iovecLength(buffers), true, done)) return;
  submitRows(true, offset, std::move(buffers), std::move(done));
}

void ParityVolume::directRead(std::shared_ptr<RowOp> op) {
  // The common case: every chunk read lives on a healthy leg, no lock needed.
  std::vector<std::pair<uint32_t, std::pair<uint64_t, uint64_t>>> reads;
  for (uint32_t i = 0; i < legs_ - 1; ++i) {
    auto [a, b] = op->chunkRange(i, stripe_);
    if (a == b) continue;
    uint32_t leg = dataLeg(legs_, op->row, i);
    if (!legReadable(leg, op->row * stripe_ + a, b - a)) return lockedRowOp(std::move(op));
    reads.push_back({i, {a, b}});
  }
  auto join = IoJoin::make(pool_->loop(), [this, op](int result) {
    if (result >= 0) return finish(op, 0);
    // A leg failed under us; read again reconstructing it.
    lockedRowOp(op);
  });
  for (auto& [i, range] : reads) {
    auto [a, b] = range;
    uint32_t leg = dataLeg(legs_, op->row, i);
    legTransfer(*pool_, record_.legs[leg], LegOp::Read, true, op->row * stripe_ + a, b - a,
                sliceIovecs(op->buffers, i * stripe_ + a - op->start, b - a), join->add());
  }
  join->arm();
}

void ParityVolume::lockedRowOp(std::shared_ptr<RowOp> op) {
  uint64_t row = op->row;
  lockRow(row, [this, op] {
    op->locked = true;
    rowReadPhase(op);
  });
}

void ParityVolume::rowReadPhase(std::shared_ptr<RowOp> op) {
  uint64_t lo = stripe_, hi = 0;
  for (uint32_t i = 0; i < legs_ - 1; ++i) {
    auto [a, b] = op->chunkRange(i, stripe_);
    if (a == b) continue;
    lo = std::min(lo, a);
    hi = std::max(hi, b);
  }
  op->lo = lo / kSliceAlign * kSliceAlign;
  op->hi = std::min<uint64_t>(stripe_, (hi + kSliceAlign - 1) / kSliceAlign * kSliceAlign);
  uint64_t len = op->hi - op->lo;
  uint64_t legOffset = op->row * stripe_ + op->lo;

  std::vector<uint32_t> unreadable;
  for (uint32_t leg = 0; leg < legs_; ++leg)
    if (!legReadable(leg, legOffset, len)) unreadable.push_back(leg);
  if (unreadable.size() > 1) return finish(op, -EIO);

  // Which data chunks' old contents are needed: all touched ones for a read;
  // for a write, those it does not fully overwrite within the slice.
  uint32_t parity = parityLeg(legs_, op->row);
  std::vector<bool> need(legs_, false);
  for (uint32_t i = 0; i < legs_ - 1; ++i) {
    auto [a, b] = op->chunkRange(i, stripe_);
    bool touched = a != b;
    bool covers = touched && a <= op->lo && b >= op->hi;
    need[dataLeg(legs_, op->row, i)] = op->write ? !covers : touched;
  }
  int missing = -1;
  if (!unreadable.empty() && unreadable[0] != parity && need[unreadable[0]]) missing = static_cast<int>(unreadable[0]);
  std::vector<bool> read(legs_, false);
  for (uint32_t leg = 0; leg < legs_; ++leg) {
    if (missing >= 0)
      read[leg] = leg != static_cast<uint32_t>(missing);  // reconstruct from every other leg
    else
      read[leg] = need[leg];
  }

  op->slices.clear();
  for (uint32_t leg = 0; leg < legs_; ++leg) op->slices.push_back(makeAlignedBuffer(len));
  auto join = IoJoin::make(pool_->loop(), [this, op, missing, len](int result) {
    if (result < 0) {
      if (++op->attempt >= kMaxAttempts) return finish(op, -EIO);
      return rowReadPhase(op);  // the failed leg is marked now: reconstruct it
    }
    if (missing >= 0) {
      std::vector<const uint8_t*> sources;
      for (uint32_t leg = 0; leg < legs_; ++leg)
        if (leg != static_cast<uint32_t>(missing)) sources.push_back(op->slices[leg].get());
      xorBlocks(sources, op->slices[missing].get(), len);
    }
    rowFinish(op);
  });
  for (uint32_t leg = 0; leg < legs_; ++leg) {
    if (!read[leg]) continue;
    legTransfer(*pool_, record_.legs[leg], LegOp::Read, true, legOffset, len, {iovec{op->slices[leg].get(), len}},
                join->add());
  }
  join->arm();
}

void ParityVolume::rowFinish(std::shared_ptr<RowOp> op) {
  uint64_t len = op->hi - op->lo;
  uint64_t legOffset = op->row * stripe_ + op->lo;
  uint32_t parity = parityLeg(legs_, op->row);
  if (!op->write) {
    for (uint32_t i = 0; i < legs_ - 1; ++i) {
      auto [a, b] = op->chunkRange(i, stripe_);
      if (a == b) continue;
      uint32_t leg = dataLeg(legs_, op->row, i);
      copyToIovecs(op->buffers, i * stripe_ + a - op->start, op->slices[leg].get() + (a - op->lo), b - a);
    }
    return finish(op, 0);
  }
  std::vector<const uint8_t*> data;
  std::vector<uint32_t> touchedLegs;
  for (uint32_t i = 0; i < legs_ - 1; ++i) {
    uint32_t leg = dataLeg(legs_, op->row, i);
    data.push_back(op->slices[leg].get());
    auto [a, b] = op->chunkRange(i, stripe_);
    if (a == b) continue;
    copyFromIovecs(op->buffers, i * stripe_ + a - op->start, op->slices[leg].get() + (a - op->lo), b - a);
    touchedLegs.push_back(leg);
  }
  xorBlocks(data, op->slices[parity].get(), len);
  touchedLegs.push_back(parity);
  auto join = IoJoin::make(pool_->loop(), [this, op](int) {
    // Losing one leg mid-write still leaves data and parity consistent.
    finish(op, pool_->health(record_).failed ? -EIO : 0);
  });
  for (uint32_t leg : touchedLegs) {
    if (!legWritable(leg, legOffset, len)) continue;
    legTransfer(*pool_, record_.legs[leg], LegOp::Write, true, legOffset, len, {iovec{op->slices[leg].get(), len}},
                join->add());
  }
  join->arm();
}

void ParityVolume::finish(std::shared_ptr<RowOp> op, int result) {
  if (op->locked) {
    op->locked = false;
    unlockRow(op->row);
  }
  auto done = std::move(op->done);
  op->slices.clear();
  done(result);
}

void ParityVolume::flush(IoCompletion done) {
  std::set<uint32_t> pvs;
  for (const Leg& l : record_.legs)
    for (const ExtentRun& run : l.runs) pvs.insert(run.pv);
  auto join = IoJoin::make(pool_->loop(), [this, done = std::move(done)](int) {
    done(pool_->health(record_).failed ? -EIO : 0);
  });
  for (uint32_t pv : pvs) {
    if (!pool_->pvPresent(pv)) continue;
    pool_->pvImage(pv)->flush([this, pv, sub = join->add()](int result) {
      if (result < 0) pool_->reportPvFailure(pv, result);
      sub(0);
    });
  }
  join->arm();
}

void ParityVolume::discard(uint64_t offset, uint64_t length, IoCompletion done) {
  if (!rangeOk(offset, length, true, done)) return;
  // Advisory: dropping data would break parity, so keep it.
  completeSoon(pool_->loop(), std::move(done), 0);
}

void ParityVolume::writeZeroes(uint64_t offset, uint64_t length, IoCompletion done) {
  if (!rangeOk(offset, length, true, done)) return;
  constexpr uint64_t kPiece = 4 << 20;
  auto zeroes = std::make_shared<AlignedBuffer>(makeAlignedBuffer(std::min(length, kPiece)));
  auto join = IoJoin::make(pool_->loop(), [zeroes, done = std::move(done)](int result) { done(result); });
  for (uint64_t at = 0; at < length; at += kPiece) {
    uint64_t n = std::min(kPiece, length - at);
    submitRows(true, offset + at, {iovec{zeroes->get(), n}}, join->add());
  }
  join->arm();
}

}  // namespace strata::storage::volume
