#include "machine/bus.h"

#include <algorithm>

#include <fmt/core.h>

namespace strata::machine {

Result<void> Bus::map(uint64_t base, uint64_t size, MmioDevice* device) {
  for (const auto& m : mappings_) {
    if (base < m.base + m.size && m.base < base + size)
      return Error{fmt::format("MMIO range {:#x}+{:#x} overlaps {:#x}+{:#x}", base, size, m.base, m.size)};
  }
  mappings_.push_back({base, size, device});
  std::sort(mappings_.begin(), mappings_.end(), [](auto& a, auto& b) { return a.base < b.base; });
  return {};
}

const Bus::Mapping* Bus::find(uint64_t pa, unsigned size) const {
  auto it = std::upper_bound(mappings_.begin(), mappings_.end(), pa,
                             [](uint64_t addr, const Mapping& m) { return addr < m.base; });
  if (it == mappings_.begin()) return nullptr;
  --it;
  if (pa - it->base >= it->size || size > it->size - (pa - it->base)) return nullptr;
  return &*it;
}

bool Bus::mmioRead(uint64_t pa, unsigned size, uint64_t& value) {
  const Mapping* m = find(pa, size);
  if (!m) return false;
  value = m->device->read(pa - m->base, size);
  return true;
}

bool Bus::mmioWrite(uint64_t pa, unsigned size, uint64_t value) {
  const Mapping* m = find(pa, size);
  if (!m) return false;
  m->device->write(pa - m->base, size, value);
  return true;
}

}  // namespace strata::machine
