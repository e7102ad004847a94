// What a hart sees of the machine's physical address space: one contiguous RAM
// range it may touch through a host pointer, and everything else routed to an
// MMIO handler (the board's bus). Kept in cpu/ so the CPU does not depend on
// the machine layer; machine::Bus implements MmioHandler.
#pragma once

#include <cstdint>

#include "base/dirty_bitmap.h"

namespace strata::cpu {

class MmioHandler {
 public:
  virtual ~MmioHandler() = default;
  // size is 1, 2, 4 or 8 and pa is aligned to it. False means no device
  // answers there: the hart raises an access fault.
  virtual bool mmioRead(uint64_t pa, unsigned size, uint64_t& value) = 0;
  virtual bool mmioWrite(uint64_t pa, unsigned size, uint64_t value) = 0;
};

struct PhysicalMemory {
  uint64_t ramBase = 0;
  uint64_t ramSize = 0;
  uint8_t* ramHost = nullptr;
  MmioHandler* mmio = nullptr;
  // Guest RAM's dirty log (live migration); marked by every store the slow path
  // translates, so a write TLB entry exists only for a page already marked.
  DirtyBitmap* dirty = nullptr;

  // Host pointer for [pa, pa+len) if it lies wholly in RAM, else nullptr.
  uint8_t* ram(uint64_t pa, uint64_t len) const {
    uint64_t offset = pa - ramBase;
    if (pa < ramBase || offset > ramSize || len > ramSize - offset) return nullptr;
    return ramHost + offset;
  }
  void noteStore(uint64_t pa) const {
    if (dirty != nullptr && pa - ramBase < ramSize) dirty->markRange(pa - ramBase, 1);
  }
};

}  // namespace strata::cpu
