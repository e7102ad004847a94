// LegIo: I/O on one leg (RAID member) of a volume, which is a list of extent
// runs that may span PVs. Each piece goes to its PV's RawImage; a PV that is
// missing or stale fails the request without being touched, and on redundant
// volumes a PV that returns an error is reported to the pool as failed.
// LegGather turns a request spread over legs into one vectored transfer per
// contiguous leg range.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <string>
#include <vector>

#include "storage/block_device.h"
#include "storage/volume/io_util.h"
#include "storage/volume/pool.h"
#include "storage/volume/write_intent.h"

namespace strata::storage::volume {

enum class LegOp { Read, Write, Zero, Discard };

// Every PV under the volume's legs, each once (what a flush of the volume flushes).
std::vector<uint32_t> volumePvs(const VolumeRecord& volume);
// The serial a pool volume shows its guest: "POOL/VOLUME", cut to 20 bytes.
std::string volumeSerial(const Pool& pool, const VolumeRecord& volume);

// The PV a leg lives on if it is all on one (RAID legs); else the first one.
uint32_t legPrimaryPv(const Leg& leg);

// Appends the PV pieces under [legOffset, +length) of the leg (nothing past its end).
void legPvRanges(const Leg& leg, uint64_t extentSize, uint64_t legOffset, uint64_t length, std::vector<PvRange>& out);

// Whether every PV under [legOffset, +length) can serve the op right now.
bool legAvailable(const Pool& pool, const Leg& leg, uint64_t extentSize, LegOp op, bool redundant,
                  uint64_t legOffset, uint64_t length);

// Submits the op if every PV under the range can serve it and returns true
// (having taken buffers and done); otherwise returns false and leaves both
// untouched, so the caller can try elsewhere. buffers are used for Read/Write
// and ignored for Zero/Discard.
bool legSubmit(Pool& pool, const Leg& leg, LegOp op, bool redundant, uint64_t legOffset, uint64_t length,
               std::vector<iovec>&& buffers, IoCompletion&& done);

// legSubmit, completing with -EIO (asynchronously) when the leg cannot serve.
void legTransfer(Pool& pool, const Leg& leg, LegOp op, bool redundant, uint64_t legOffset, uint64_t length,
                 std::vector<iovec> buffers, IoCompletion done);

// Collects the pieces of one request in request order and merges a piece into
// the previous one on the same leg when their leg ranges are adjacent.
class LegGather {
 public:
  struct Piece {
    uint32_t leg;
    uint64_t legOffset;
    uint64_t length;
    std::vector<iovec> buffers;  // empty for Zero/Discard
  };
  // request: the request's buffers, or empty for Zero/Discard.
  LegGather(const std::vector<iovec>& request, uint32_t legs);
  // The next `length` bytes of the request go to [legOffset, +length) of leg.
  void add(uint32_t leg, uint64_t legOffset, uint64_t length);
  std::vector<Piece>& pieces() { return pieces_; }

 private:
  IovecCursor cursor_;
  bool withBuffers_;
  std::vector<Piece> pieces_;
  std::vector<int32_t> open_;  // per leg: index of its last piece, or -1
};

}  // namespace strata::storage::volume
