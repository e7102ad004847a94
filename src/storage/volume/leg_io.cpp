#include "storage/volume/leg_io.h"

#include <algorithm>

#include "storage/volume/io_util.h"

namespace strata::storage::volume {

std::vector<PvPiece> mapLegRange(const Leg& leg, uint64_t extentSize, uint64_t legOffset, uint64_t length) {
  std::vector<PvPiece> pieces;
  uint64_t runStart = 0;  // leg offset where the current run begins
  for (const ExtentRun& run : leg.runs) {
    if (length == 0) break;
    uint64_t runBytes = run.count * extentSize;
    if (legOffset < runStart + runBytes) {
      uint64_t within = legOffset - runStart;
      uint64_t n = std::min(length, runBytes - within);
      pieces.push_back({run.pv, kPvDataStart + run.start * extentSize + within, legOffset, n});
      legOffset += n;
      length -= n;
    }
    runStart += runBytes;
  }
  if (length != 0) return {};
  return pieces;
}

uint32_t legPrimaryPv(const Leg& leg) { return leg.runs.empty() ? 0 : leg.runs.front().pv; }

namespace {
bool pvServes(const Pool& pool, uint32_t pv, LegOp op, bool redundant) {
  if (!redundant) {
    // A non-redundant volume's only copy is on this PV: use it while it is there.
    return pool.pvPresent(pv) && pool.record().pvs[pv].state != PvState::Rebuilding;
  }
  return op == LegOp::Read ? pool.pvReadable(pv) : pool.pvWritable(pv);
}
}  // namespace

bool legAvailable(const Pool& pool, const Leg& leg, uint64_t extentSize, LegOp op, bool redundant,
                  uint64_t legOffset, uint64_t length) {
  auto pieces = mapLegRange(leg, extentSize, legOffset, length);
  if (pieces.empty()) return false;
  for (const auto& p : pieces)
    if (!pvServes(pool, p.pv, op, redundant)) return false;
  return true;
}

void legTransfer(Pool& pool, const Leg& leg, LegOp op, bool redundant, uint64_t legOffset, uint64_t length,
                 std::vector<iovec> buffers, IoCompletion done) {
  auto join = IoJoin::make(pool.loop(), std::move(done));
  auto pieces = mapLegRange(leg, pool.extentSize(), legOffset, length);
  if (pieces.empty() && length > 0) join->fail(-EINVAL);
  for (const PvPiece& piece : pieces) {
    if (!pvServes(pool, piece.pv, op, redundant)) {
      join->fail(-EIO);
      continue;
    }
    RawImage* image = pool.pvImage(piece.pv);
    auto completion = [poolRef = pool.shared_from_this(), pv = piece.pv, redundant, sub = join->add()](int result) {
      if (result < 0 && result != -EINVAL && redundant) poolRef->reportPvFailure(pv, result);
      sub(result);
    };
    uint64_t at = piece.legOffset - legOffset;
    switch (op) {
      case LegOp::Read: image->readv(piece.pvOffset, sliceIovecs(buffers, at, piece.length), completion); break;
      case LegOp::Write: image->writev(piece.pvOffset, sliceIovecs(buffers, at, piece.length), completion); break;
      case LegOp::Zero: image->writeZeroes(piece.pvOffset, piece.length, completion); break;
      case LegOp::Discard: image->discard(piece.pvOffset, piece.length, completion); break;
    }
  }
  join->arm();
}

}  // namespace strata::storage::volume
