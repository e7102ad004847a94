#include "storage/volume/parity_volume.h"

#include <fmt/core.h>

#include <algorithm>
#include <cstring>

#include "base/log.h"
#include "storage/volume/io_util.h"
#include "storage/volume/parity.h"
#include "storage/volume/write_intent.h"

namespace strata::storage::volume {

namespace {

constexpr uint64_t kColumn = 4096;  // parity granularity: a 4 KiB slice of every leg of a row
constexpr int kMaxAttempts = 3;
constexpr uint64_t kMaxPooledScratch = 4 << 20;  // larger rows allocate per batch
constexpr uint64_t kMaxSpareBytes = 32 << 20;    // kept for reuse, per volume

// Per column and leg, what a batch does with that leg's slice.
enum : uint8_t { kTouched = 1, kFull = 2, kRead = 4, kWrite = 8 };
// Per column: how parity (or, for reads, the wanted data) is obtained.
enum class Mode : uint8_t {
  Idle,         // no request touches the column
  Plain,        // reads: the data legs are read as they are
  Reconstruct,  // the missing leg is rebuilt from all others first (then as Rcw for writes)
  Rcw,          // reconstruct-write: parity = XOR of every data leg
  Rmw,          // read-modify-write: parity ^= old ^ new of the touched legs
};

// Calls fn(first, end) for each maximal run of indexes in [0, n) where pred holds.
template <typename Pred, typename Fn>
void forEachRun(size_t n, Pred pred, Fn fn) {
  for (size_t c = 0; c < n;) {
    if (!pred(c)) {
      ++c;
      continue;
    }
    size_t e = c + 1;
    while (e < n && pred(e)) ++e;
    fn(c, e);
    c = e;
  }
}

}  // namespace

struct ParityVolume::Batch {
  bool write = false;
  uint64_t row = 0;
  std::vector<Member> members;  // in arrival order: later writes win
  uint64_t lo = 0, hi = 0;      // the column slice [lo, hi) within the chunks
  RangeLock::Ticket ticket = 0;
  int attempt = 0;
  int missing = -1;             // the leg that cannot be read, if any
  AlignedBuffer scratch;        // legs slices of hi - lo bytes
  std::vector<uint8_t> flags;   // [column * legs + leg]
  std::vector<Mode> modes;      // [column]
  std::vector<PvRange> marked;  // writes: the regions marked in the write-intent bitmaps

  uint64_t sliceBytes() const { return hi - lo; }
  size_t columns() const { return static_cast<size_t>(sliceBytes() / kColumn); }
  uint8_t* slice(uint32_t leg, size_t column = 0) { return scratch.get() + leg * sliceBytes() + column * kColumn; }
};

namespace {
// The in-chunk range data chunk i contributes to a member; empty when untouched.
std::pair<uint64_t, uint64_t> chunkPart(uint64_t start, uint64_t length, uint32_t i, uint64_t stripe) {
  uint64_t chunkStart = i * stripe;
  uint64_t a = std::max(start, chunkStart), b = std::min(start + length, chunkStart + stripe);
  if (a >= b) return {0, 0};
  return {a - chunkStart, b - chunkStart};
}
}  // namespace

ParityVolume::ParityVolume(std::shared_ptr<Pool> pool, VolumeRecord record, bool readOnly)
    : pool_(std::move(pool)), record_(std::move(record)), readOnly_(readOnly) {
  legs_ = static_cast<uint32_t>(record_.legs.size());
  stripe_ = record_.stripeSize;
  lock_ = pool_->volumeLock(record_.id);
  pvs_ = volumePvs(record_);
}

std::string ParityVolume::serial() const { return volumeSerial(*pool_, record_); }

bool ParityVolume::rangeOk(uint64_t offset, uint64_t length, bool write, IoCompletion& done) {
  return requestAllowed(pool_->loop(), record_.sizeBytes, readOnly_, offset, length, write, done);
}

bool ParityVolume::legReadable(uint32_t leg, uint64_t legOffset, uint64_t length) const {
  return legAvailable(*pool_, record_.legs[leg], pool_->extentSize(), LegOp::Read, true, legOffset, length);
}

template <typename Fn>
void ParityVolume::splitRows(uint64_t offset, std::vector<iovec> buffers, IoCompletion done, Fn fn) {
  uint64_t length = iovecLength(buffers);
  if (length == 0) return completeSoon(pool_->loop(), std::move(done), 0);
  uint64_t rowBytes = (legs_ - 1) * stripe_;
  uint64_t row = offset / rowBytes, start = offset % rowBytes;
  if (start + length <= rowBytes) return fn(row, Member{start, length, std::move(buffers), std::move(done)});
  auto join = IoJoin::make(pool_->loop(), std::move(done));
  IovecCursor cursor(buffers);
  for (uint64_t at = 0; at < length;) {
    row = (offset + at) / rowBytes;
    start = (offset + at) % rowBytes;
    uint64_t n = std::min(rowBytes - start, length - at);
    Member member{start, n, {}, join->add()};
    cursor.take(n, member.buffers);
    fn(row, std::move(member));
    at += n;
  }
  join->arm();
}

// --- reads

void ParityVolume::readv(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) {
  if (!rangeOk(offset, iovecLength(buffers), false, done)) return;
  directRead(offset, std::move(buffers), std::move(done));
}

void ParityVolume::directRead(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) {
  // The common case: every chunk read lives on a healthy leg, no lock needed.
  // Chunks adjacent on a leg (consecutive rows) become one request.
  uint64_t length = iovecLength(buffers);
  if (length == 0) return completeSoon(pool_->loop(), std::move(done), 0);
  uint64_t rowBytes = (legs_ - 1) * stripe_;
  // A leg that fails under us is marked failed: read again reconstructing it.
  auto retryLocked = [this, offset](std::vector<iovec>&& kept, IoCompletion&& finished) -> IoCompletion {
    DirectRead* read = directReads_.take();
    read->offset = offset;
    read->buffers = std::move(kept);
    read->done = std::move(finished);
    return [this, read](int result) {
      uint64_t at = read->offset;
      auto buffers = std::move(read->buffers);
      IoCompletion done = std::move(read->done);
      directReads_.give(read);
      if (result >= 0) return done(0);
      lockedRead(at, std::move(buffers), std::move(done));
    };
  };
  if (offset / stripe_ == (offset + length - 1) / stripe_) {
    // Inside one chunk: one leg, no gathering.
    uint64_t row = offset / rowBytes;
    uint32_t leg = dataLeg(legs_, row, static_cast<uint32_t>(offset % rowBytes / stripe_));
    uint64_t legOffset = row * stripe_ + offset % stripe_;
    auto iov = buffers;
    IoCompletion retry = retryLocked(std::move(buffers), std::move(done));
    if (legSubmit(*pool_, record_.legs[leg], LegOp::Read, true, legOffset, length, std::move(iov), std::move(retry)))
      return;
    return retry(-EIO);  // the leg cannot serve: straight to the reconstructing read
  }
  LegGather gather(buffers, legs_);
  for (uint64_t at = offset, end = offset + length; at < end;) {
    uint64_t row = at / rowBytes, within = at % rowBytes;
    uint32_t i = static_cast<uint32_t>(within / stripe_);
    uint64_t a = within % stripe_;
    uint64_t n = std::min(stripe_ - a, end - at);
    gather.add(dataLeg(legs_, row, i), row * stripe_ + a, n);
    at += n;
  }
  auto& pieces = gather.pieces();
  for (const auto& piece : pieces)
    if (!legReadable(piece.leg, piece.legOffset, piece.length))
      return lockedRead(offset, std::move(buffers), std::move(done));
  // (The pieces hold their own iovecs: the request's list can move on.)
  auto retry = retryLocked(std::move(buffers), std::move(done));
  if (pieces.size() == 1) {
    auto& piece = pieces[0];
    legTransfer(*pool_, record_.legs[piece.leg], LegOp::Read, true, piece.legOffset, piece.length,
                std::move(piece.buffers), std::move(retry));
    return;
  }
  auto join = IoJoin::make(pool_->loop(), std::move(retry));
  for (auto& piece : pieces)
    legTransfer(*pool_, record_.legs[piece.leg], LegOp::Read, true, piece.legOffset, piece.length,
                std::move(piece.buffers), join->add());
  join->arm();
}

void ParityVolume::lockedRead(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) {
  splitRows(offset, std::move(buffers), std::move(done), [this](uint64_t row, Member&& member) {
    auto batch = std::make_shared<Batch>();
    batch->row = row;
    batch->members.push_back(std::move(member));
    lockBatch(std::move(batch));
  });
}

// --- writes

void ParityVolume::writev(uint64_t offset, std::vector<iovec> buffers, IoCompletion done) {
  if (!rangeOk(offset, iovecLength(buffers), true, done)) return;
  splitRows(offset, std::move(buffers), std::move(done),
            [this](uint64_t row, Member&& member) { queueWrite(row, std::move(member)); });
}

void ParityVolume::queueWrite(uint64_t row, Member member) {
  auto& batch = forming_[row];
  if (!batch) {
    batch = std::make_shared<Batch>();
    batch->write = true;
    batch->row = row;
  }
  batch->members.push_back(std::move(member));
  if (startPosted_) return;
  // Writes submitted in this loop iteration (a guest's queue, a burst of
  // completions resubmitting) share one parity pass per row.
  startPosted_ = true;
  pool_->loop().post([this, alive = std::weak_ptr<char>(alive_)] {
    if (alive.lock()) startQueued();
  });
}

void ParityVolume::startQueued() {
  startPosted_ = false;
  auto batches = std::move(forming_);
  forming_.clear();
  for (auto& [row, batch] : batches) lockBatch(std::move(batch));
}

template <typename Visit>
void ParityVolume::forEachWrittenSlice(const Batch& batch, Visit&& visit) const {
  for (const Member& m : batch.members)
    for (uint32_t i = 0; i < legs_ - 1; ++i) {
      auto [a, b] = chunkPart(m.start, m.length, i, stripe_);
      if (a == b) continue;
      const uint32_t leg = dataLeg(legs_, batch.row, i);
      for (uint64_t c = (a - batch.lo) / kColumn; c * kColumn + batch.lo < b; ++c) {
        const uint64_t colStart = batch.lo + c * kColumn;
        visit(m, i, leg, c, std::max(a, colStart), std::min(b, colStart + kColumn));
      }
    }
}

void ParityVolume::lockBatch(std::shared_ptr<Batch> batch) {
  uint64_t lo = stripe_, hi = 0;
  for (const Member& m : batch->members)
    for (uint32_t i = 0; i < legs_ - 1; ++i) {
      auto [a, b] = chunkPart(m.start, m.length, i, stripe_);
      if (a == b) continue;
      lo = std::min(lo, a);
      hi = std::max(hi, b);
    }
  batch->lo = lo / kColumn * kColumn;
  batch->hi = std::min<uint64_t>(stripe_, (hi + kColumn - 1) / kColumn * kColumn);
  uint64_t base = batch->row * stripe_;
  lock_->acquire(base + batch->lo, base + batch->hi, [this, batch](RangeLock::Ticket ticket) {
    batch->ticket = ticket;
    runBatch(batch);
  });
}

void ParityVolume::runBatch(std::shared_ptr<Batch> batch) {
  const uint64_t len = batch->sliceBytes();
  const uint64_t legOffset = batch->row * stripe_ + batch->lo;
  const size_t columns = batch->columns();
  const uint32_t parity = parityLeg(legs_, batch->row);

  batch->missing = -1;
  for (uint32_t leg = 0; leg < legs_; ++leg) {
    if (legReadable(leg, legOffset, len)) continue;
    if (batch->missing >= 0) {
      // Two legs gone: the data is lost. Still complete asynchronously.
      return completeSoon(pool_->loop(), [this, batch](int result) { finishBatch(batch, result); }, -EIO);
    }
    batch->missing = static_cast<int>(leg);
  }
  const int missing = batch->missing;

  auto& flags = batch->flags;
  flags.assign(columns * legs_, 0);
  forEachWrittenSlice(*batch, [&](const Member&, uint32_t, uint32_t leg, uint64_t c, uint64_t from, uint64_t to) {
    flags[c * legs_ + leg] |= kTouched;
    if (to - from == kColumn) flags[c * legs_ + leg] |= kFull;
  });

  batch->modes.assign(columns, Mode::Idle);
  for (size_t c = 0; c < columns; ++c) {
    uint8_t* f = &flags[c * legs_];
    bool touched = false;
    for (uint32_t leg = 0; leg < legs_; ++leg) touched = touched || (f[leg] & kTouched);
    if (!touched) continue;
    auto readAllBut = [&](int skip) {
      for (uint32_t leg = 0; leg < legs_; ++leg)
        if (static_cast<int>(leg) != skip) f[leg] |= kRead;
    };
    Mode& mode = batch->modes[c];
    if (!batch->write) {
      if (missing >= 0 && (f[missing] & kTouched)) {
        mode = Mode::Reconstruct;
        readAllBut(missing);
      } else {
        mode = Mode::Plain;
        for (uint32_t leg = 0; leg < legs_; ++leg)
          if (f[leg] & kTouched) f[leg] |= kRead;
      }
      continue;
    }
    // Reconstruct-write reads the data legs not wholly overwritten;
    // read-modify-write reads the touched legs and parity. Fewer reads win;
    // on a tie reconstruct-write, which does not trust the old parity.
    uint32_t rcwReads = 0, rmwReads = 1;
    bool rcwOk = true, rmwOk = missing != static_cast<int>(parity);
    for (uint32_t leg = 0; leg < legs_; ++leg) {
      if (leg == parity) continue;
      bool isMissing = static_cast<int>(leg) == missing;
      if (!(f[leg] & kFull)) {
        ++rcwReads;
        rcwOk = rcwOk && !isMissing;
      }
      if (f[leg] & kTouched) {
        ++rmwReads;
        rmwOk = rmwOk && !isMissing;
      }
    }
    if (rcwOk && (!rmwOk || rcwReads <= rmwReads)) {
      mode = Mode::Rcw;
      for (uint32_t leg = 0; leg < legs_; ++leg)
        if (leg != parity && !(f[leg] & kFull)) f[leg] |= kRead;
    } else if (rmwOk) {
      mode = Mode::Rmw;
      f[parity] |= kRead;
      for (uint32_t leg = 0; leg < legs_; ++leg)
        if (f[leg] & kTouched) f[leg] |= kRead;
    } else {
      mode = Mode::Reconstruct;
      readAllBut(missing);
    }
    f[parity] |= kWrite;
    for (uint32_t leg = 0; leg < legs_; ++leg)
      if (f[leg] & kTouched) f[leg] |= kWrite;
  }

  if (missing >= 0 && pool_->writeIntent().atRisk(record_.id, legOffset, len) &&
      std::find(batch->modes.begin(), batch->modes.end(), Mode::Reconstruct) != batch->modes.end()) {
    log::error("volume {}/{}: row {} was being written when the pool shut down uncleanly and leg {} is missing; "
               "its parity cannot be trusted, so the missing data is not reconstructed (EIO)",
               pool_->name(), record_.name, batch->row, missing);
    return completeSoon(pool_->loop(), [this, batch](int result) { finishBatch(batch, result); }, -EIO);
  }

  if (!batch->scratch) batch->scratch = takeScratch(len * legs_);
  auto join = IoJoin::make(pool_->loop(), [this, batch](int result) {
    if (result >= 0) return computeBatch(batch);
    if (++batch->attempt >= kMaxAttempts) return finishBatch(batch, -EIO);
    runBatch(batch);  // the failed leg is marked now: reconstruct it
  });
  if (batch->write && batch->marked.empty()) {
    // Every leg of the slice is marked before any of them is written (the
    // reads meanwhile): a crash in between leaves the row dirty on all of them.
    for (uint32_t leg = 0; leg < legs_; ++leg)
      legPvRanges(record_.legs[leg], pool_->extentSize(), legOffset, len, batch->marked);
    pool_->writeIntent().begin(batch->marked, [sub = join->add()]() mutable { sub(0); });
  }
  for (uint32_t leg = 0; leg < legs_; ++leg)
    forEachRun(
        columns, [&](size_t c) { return (flags[c * legs_ + leg] & kRead) != 0; },
        [&](size_t first, size_t end) {
          uint64_t n = (end - first) * kColumn;
          legTransfer(*pool_, record_.legs[leg], LegOp::Read, true, legOffset + first * kColumn, n,
                      {iovec{batch->slice(leg, first), n}}, join->add());
        });
  join->arm();
}

void ParityVolume::computeBatch(std::shared_ptr<Batch> batch) {
  const size_t columns = batch->columns();
  const uint32_t parity = parityLeg(legs_, batch->row);
  const uint64_t legOffset = batch->row * stripe_ + batch->lo;
  auto& flags = batch->flags;
  auto& modes = batch->modes;
  auto runBytes = [](size_t first, size_t end) { return (end - first) * kColumn; };

  if (batch->missing >= 0) {
    uint32_t missing = static_cast<uint32_t>(batch->missing);
    forEachRun(
        columns, [&](size_t c) { return modes[c] == Mode::Reconstruct; },
        [&](size_t first, size_t end) {
          std::vector<const uint8_t*> sources;
          for (uint32_t leg = 0; leg < legs_; ++leg)
            if (leg != missing) sources.push_back(batch->slice(leg, first));
          xorBlocks(sources, batch->slice(missing, first), runBytes(first, end));
        });
  }

  if (!batch->write) {
    for (const Member& m : batch->members)
      for (uint32_t i = 0; i < legs_ - 1; ++i) {
        auto [a, b] = chunkPart(m.start, m.length, i, stripe_);
        if (a != b)
          copyToIovecs(m.buffers, i * stripe_ + a - m.start,
                       batch->slice(dataLeg(legs_, batch->row, i)) + (a - batch->lo), b - a);
      }
    return finishBatch(batch, 0);
  }

  // The new data is copied into the scratch slices first, and parity is
  // computed from and the legs written from those copies: a guest changing
  // its buffer while the batch runs cannot make parity disagree with the data
  // that reaches the PVs.
  // Read-modify-write: take the old data out of the parity, the new in below.
  auto rmwDelta = [&] {
    for (size_t c = 0; c < columns; ++c) {
      if (modes[c] != Mode::Rmw) continue;
      for (uint32_t leg = 0; leg < legs_; ++leg)
        if (flags[c * legs_ + leg] & kTouched) xorInto(batch->slice(parity, c), batch->slice(leg, c), kColumn);
    }
  };
  rmwDelta();
  forEachWrittenSlice(*batch, [&](const Member& m, uint32_t i, uint32_t leg, uint64_t c, uint64_t from, uint64_t to) {
    const uint64_t colStart = batch->lo + c * kColumn;
    copyFromIovecs(m.buffers, i * stripe_ + from - m.start, batch->slice(leg, c) + (from - colStart), to - from);
  });
  rmwDelta();
  // Reconstruct-write: parity = XOR of the data legs, over runs of columns.
  forEachRun(
      columns, [&](size_t c) { return modes[c] == Mode::Rcw || modes[c] == Mode::Reconstruct; },
      [&](size_t first, size_t end) {
        std::vector<const uint8_t*> data;
        for (uint32_t leg = 0; leg < legs_; ++leg)
          if (leg != parity) data.push_back(batch->slice(leg, first));
        xorBlocks(data, batch->slice(parity, first), runBytes(first, end));
      });

  auto join = IoJoin::make(pool_->loop(), [this, batch](int) {
    // Losing one leg mid-write still leaves data and parity consistent.
    finishBatch(batch, pool_->health(record_).failed ? -EIO : 0);
  });
  for (uint32_t leg = 0; leg < legs_; ++leg)
    forEachRun(
        columns, [&](size_t c) { return (flags[c * legs_ + leg] & kWrite) != 0; },
        [&](size_t first, size_t end) {
          // A leg that cannot take writes (missing) is skipped: parity covers it.
          IoCompletion sub = join->add();
          if (!legSubmit(*pool_, record_.legs[leg], LegOp::Write, true, legOffset + first * kColumn,
                         runBytes(first, end), {iovec{batch->slice(leg, first), runBytes(first, end)}},
                         std::move(sub)))
            sub(0);
        });
  join->arm();
}

void ParityVolume::finishBatch(std::shared_ptr<Batch> batch, int result) {
  if (!batch->marked.empty()) pool_->writeIntent().end(batch->marked);
  lock_->release(batch->ticket);
  if (batch->scratch) returnScratch(std::move(batch->scratch), batch->sliceBytes() * legs_);
  auto members = std::move(batch->members);
  for (Member& m : members) m.done(result);
}

AlignedBuffer ParityVolume::takeScratch(uint64_t bytes) {
  uint64_t pooled = stripe_ * legs_;
  if (pooled > kMaxPooledScratch || bytes > pooled) return makeScratchBuffer(bytes);
  if (spareScratch_.empty()) return makeScratchBuffer(pooled);
  auto buffer = std::move(spareScratch_.back());
  spareScratch_.pop_back();
  return buffer;
}

void ParityVolume::returnScratch(AlignedBuffer buffer, uint64_t bytes) {
  uint64_t pooled = stripe_ * legs_;
  if (pooled > kMaxPooledScratch || bytes > pooled || (spareScratch_.size() + 1) * pooled > kMaxSpareBytes) return;
  spareScratch_.push_back(std::move(buffer));
}

// --- the rest

void ParityVolume::flush(IoCompletion done) {
  pool_->flushPvs(pvs_, true, [this, done = std::move(done)](int) { done(pool_->health(record_).failed ? -EIO : 0); });
}

void ParityVolume::discard(uint64_t offset, uint64_t length, IoCompletion done) {
  if (!rangeOk(offset, length, true, done)) return;
  // Advisory: dropping data would break parity, so keep it.
  completeSoon(pool_->loop(), std::move(done), 0);
}

void ParityVolume::writeZeroes(uint64_t offset, uint64_t length, IoCompletion done) {
  if (!rangeOk(offset, length, true, done)) return;
  // One shared buffer of zeroes, a few pieces in flight (like a rebuild's
  // steps): the memory a request holds does not grow with its length. A
  // piece is at least a row, so wide rows still go out as full stripes.
  constexpr unsigned kPiecesInFlight = 4;
  const uint64_t piece = std::max<uint64_t>(1 << 20, (legs_ - 1) * stripe_);
  auto zeroes = std::make_shared<AlignedBuffer>(makeAlignedBuffer(std::min(length, piece)));
  submitInPieces(
      pool_->loop(), offset, length, piece, kPiecesInFlight,
      [this, zeroes](uint64_t at, uint64_t n, IoCompletion pieceDone) {
        splitRows(at, {iovec{zeroes->get(), n}}, std::move(pieceDone),
                  [this](uint64_t row, Member&& member) { queueWrite(row, std::move(member)); });
      },
      [zeroes, done = std::move(done)](int result) { done(result); });
}

}  // namespace strata::storage::volume
