// Builds the flattened device tree (libfdt) that describes a `virt` board to
// the guest kernel: memory, harts, CLINT, PLIC, UART, RTC, pvpanic, vmgenid, the
// virtio-mmio slots in use, and the /chosen boot arguments.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"

namespace strata::machine {

struct DeviceTreeSpec {
  unsigned hartCount = 1;
  uint64_t ramSize = 0;
  std::string bootArgs;
  std::optional<std::pair<uint64_t, uint64_t>> initrd;  // [start, end) guest-physical
  std::vector<unsigned> virtioSlots;                    // slots with a device behind them
  std::vector<uint8_t> rngSeed;                         // /chosen/rng-seed, may be empty
};

Result<std::vector<uint8_t>> buildDeviceTree(const DeviceTreeSpec& spec);

}  // namespace strata::machine
