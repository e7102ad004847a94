#include "storage/volume/leg_io.h"

#include <fmt/core.h>

#include <algorithm>

namespace strata::storage::volume {

namespace {

// Calls fn(pv, pvOffset, legOffset, length) for each PV piece of the range, in
// order; returns false (having called fn for none) if the range passes the
// leg's end.
template <typename Fn>
bool forEachPvPiece(const Leg& leg, uint64_t extentSize, uint64_t legOffset, uint64_t length, Fn fn) {
  uint64_t legBytes = 0;
  for (const ExtentRun& run : leg.runs) legBytes += run.count * extentSize;
  if (legOffset > legBytes || length > legBytes - legOffset) return false;
  uint64_t runStart = 0;  // leg offset where the current run begins
  for (const ExtentRun& run : leg.runs) {
    if (length == 0) break;
    uint64_t runBytes = run.count * extentSize;
    if (legOffset < runStart + runBytes) {
      uint64_t within = legOffset - runStart;
      uint64_t n = std::min(length, runBytes - within);
      fn(run.pv, kPvDataStart + run.start * extentSize + within, legOffset, n);
      legOffset += n;
      length -= n;
    }
    runStart += runBytes;
  }
  return true;
}

bool pvServes(const Pool& pool, uint32_t pv, LegOp op, bool redundant) {
  if (!redundant) {
    // A non-redundant volume's only copy is on this PV: use it while it is there.
    return pool.pvPresent(pv) && pool.record().pvs[pv].state != PvState::Rebuilding;
  }
  return op == LegOp::Read ? pool.pvReadable(pv) : pool.pvWritable(pv);
}

void submitToPv(Pool& pool, uint32_t pv, LegOp op, bool redundant, uint64_t pvOffset, uint64_t length,
                std::vector<iovec> buffers, IoCompletion done) {
  RawImage* image = pool.pvImage(pv);
  // The pool owns the image, so it outlives every completion of it.
  if (redundant) done = pool.reportingFailures(pv, std::move(done));
  switch (op) {
    case LegOp::Read: image->readv(pvOffset, std::move(buffers), std::move(done)); break;
    case LegOp::Write: image->writev(pvOffset, std::move(buffers), std::move(done)); break;
    case LegOp::Zero: image->writeZeroes(pvOffset, length, std::move(done)); break;
    case LegOp::Discard: image->discard(pvOffset, length, std::move(done)); break;
  }
}

}  // namespace

void legPvRanges(const Leg& leg, uint64_t extentSize, uint64_t legOffset, uint64_t length, std::vector<PvRange>& out) {
  forEachPvPiece(leg, extentSize, legOffset, length,
                 [&](uint32_t pv, uint64_t pvOffset, uint64_t, uint64_t n) { out.push_back({pv, pvOffset, n}); });
}

std::vector<uint32_t> volumePvs(const VolumeRecord& volume) {
  std::vector<uint32_t> pvs;
  for (const Leg& leg : volume.legs)
    for (const ExtentRun& run : leg.runs)
      if (std::find(pvs.begin(), pvs.end(), run.pv) == pvs.end()) pvs.push_back(run.pv);
  return pvs;
}

std::string volumeSerial(const Pool& pool, const VolumeRecord& volume) {
  return fmt::format("{}/{}", pool.name(), volume.name).substr(0, 20);
}

uint32_t legPrimaryPv(const Leg& leg) { return leg.runs.empty() ? 0 : leg.runs.front().pv; }

bool legAvailable(const Pool& pool, const Leg& leg, uint64_t extentSize, LegOp op, bool redundant,
                  uint64_t legOffset, uint64_t length) {
  bool ok = true;
  bool inRange = forEachPvPiece(leg, extentSize, legOffset, length, [&](uint32_t pv, uint64_t, uint64_t, uint64_t) {
    ok = ok && pvServes(pool, pv, op, redundant);
  });
  return inRange && ok;
}

bool legSubmit(Pool& pool, const Leg& leg, LegOp op, bool redundant, uint64_t legOffset, uint64_t length,
               std::vector<iovec>&& buffers, IoCompletion&& done) {
  uint32_t pieces = 0, firstPv = 0;
  uint64_t firstPvOffset = 0;
  bool ok = true;
  bool inRange = forEachPvPiece(leg, pool.extentSize(), legOffset, length,
                                [&](uint32_t pv, uint64_t pvOffset, uint64_t, uint64_t) {
                                  ok = ok && pvServes(pool, pv, op, redundant);
                                  if (pieces++ == 0) firstPv = pv, firstPvOffset = pvOffset;
                                });
  if (!inRange || !ok || length == 0) return false;
  if (pieces == 1) {
    // The usual case (one extent run): the request goes through untouched.
    submitToPv(pool, firstPv, op, redundant, firstPvOffset, length, std::move(buffers), std::move(done));
    return true;
  }
  auto join = IoJoin::make(pool.loop(), std::move(done));
  forEachPvPiece(leg, pool.extentSize(), legOffset, length,
                 [&](uint32_t pv, uint64_t pvOffset, uint64_t pieceLegOffset, uint64_t n) {
                   std::vector<iovec> slice;
                   if (op == LegOp::Read || op == LegOp::Write) slice = sliceIovecs(buffers, pieceLegOffset - legOffset, n);
                   submitToPv(pool, pv, op, redundant, pvOffset, n, std::move(slice), join->add());
                 });
  join->arm();
  return true;
}

void legTransfer(Pool& pool, const Leg& leg, LegOp op, bool redundant, uint64_t legOffset, uint64_t length,
                 std::vector<iovec> buffers, IoCompletion done) {
  if (length == 0) return completeSoon(pool.loop(), std::move(done), 0);
  if (!legSubmit(pool, leg, op, redundant, legOffset, length, std::move(buffers), std::move(done)))
    completeSoon(pool.loop(), std::move(done), -EIO);
}

LegGather::LegGather(const std::vector<iovec>& request, uint32_t legs)
    : cursor_(request), withBuffers_(!request.empty()), open_(legs, -1) {}

void LegGather::add(uint32_t leg, uint64_t legOffset, uint64_t length) {
  int32_t index = open_[leg];
  if (index >= 0) {
    Piece& last = pieces_[static_cast<size_t>(index)];
    bool fits = !withBuffers_ || last.buffers.size() + cursor_.countFor(length) <= kMaxIovecs;
    if (last.legOffset + last.length == legOffset && fits) {
      last.length += length;
      if (withBuffers_) cursor_.take(length, last.buffers);
      return;
    }
  }
  open_[leg] = static_cast<int32_t>(pieces_.size());
  Piece& piece = pieces_.emplace_back(Piece{leg, legOffset, length, {}});
  if (withBuffers_) cursor_.take(length, piece.buffers);
}

}  // namespace strata::storage::volume
