// LegIo: I/O on one leg (RAID member) of a volume, which is a list of extent
// runs that may span PVs. Each piece goes to its PV's RawImage; a PV that is
// missing or stale completes -EIO without being touched, and on redundant
// volumes a PV that returns an error is reported to the pool as failed.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <vector>

#include "storage/block_device.h"
#include "storage/volume/pool.h"

namespace strata::storage::volume {

enum class LegOp { Read, Write, Zero, Discard };

struct PvPiece {
  uint32_t pv;
  uint64_t pvOffset;
  uint64_t legOffset;
  uint64_t length;
};

// Where [legOffset, legOffset+length) of the leg lives; empty if past its end.
std::vector<PvPiece> mapLegRange(const Leg& leg, uint64_t extentSize, uint64_t legOffset, uint64_t length);

// The PV a leg lives on if it is all on one (RAID legs); else the first one.
uint32_t legPrimaryPv(const Leg& leg);

// Whether every PV under [legOffset, +length) can serve the op right now.
bool legAvailable(const Pool& pool, const Leg& leg, uint64_t extentSize, LegOp op, bool redundant,
                  uint64_t legOffset, uint64_t length);

// buffers are used for Read/Write and ignored for Zero/Discard.
void legTransfer(Pool& pool, const Leg& leg, LegOp op, bool redundant, uint64_t legOffset, uint64_t length,
                 std::vector<iovec> buffers, IoCompletion done);

}  // namespace strata::storage::volume
