// Bus: routes guest-physical MMIO accesses to the device mapped at that address.
// The map is built before vCPUs start and read-only afterwards, so lookups take
// no lock.
#pragma once

#include <cstdint>
#include <vector>

#include "base/result.h"
#include "cpu/physical_memory.h"
#include "machine/mmio_device.h"

namespace strata::machine {

class Bus : public cpu::MmioHandler {
 public:
  Result<void> map(uint64_t base, uint64_t size, MmioDevice* device);

  bool mmioRead(uint64_t pa, unsigned size, uint64_t& value) override;
  bool mmioWrite(uint64_t pa, unsigned size, uint64_t value) override;

 private:
  struct Mapping {
    uint64_t base;
    uint64_t size;
    MmioDevice* device;
  };
  const Mapping* find(uint64_t pa, unsigned size) const;
  std::vector<Mapping> mappings_;  // sorted by base, non-overlapping
};

}  // namespace strata::machine
