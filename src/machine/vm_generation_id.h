// VmGenerationId: the VM Generation ID (as Hyper-V's and QEMU's vmgenid
// device) on MMIO: 16 read-only bytes, a random id that changes whenever the
// guest resumes from a snapshot (restore, clone), so it can tell it is one of
// possibly many copies and reseed its entropy and regenerate identifiers. The
// device tree names it "microsoft,vmgenid" at virt::kVmGenIdBase; Linux 6.1
// has no driver for that node, so a guest reads it directly (`devmem`).
#pragma once

#include <array>
#include <cstdint>
#include <mutex>

#include "base/result.h"
#include "base/state_stream.h"
#include "machine/mmio_device.h"

namespace strata::machine {

class VmGenerationId : public MmioDevice {
 public:
  static constexpr uint64_t kMmioSize = 16;
  using Id = std::array<uint8_t, 16>;

  VmGenerationId();  // a fresh random id

  uint64_t read(uint64_t offset, unsigned size) override;  // little-endian bytes of the id; 0 outside it
  void write(uint64_t offset, unsigned size, uint64_t value) override;  // ignored: the id is read-only

  void regenerate();  // a new random id
  Id id() const;

  // Saved so a live migration keeps it; a restore then regenerates it.
  void save(StateWriter& out) const;
  Result<void> load(StateReader& in);

 private:
  mutable std::mutex mutex_;
  Id id_{};
};

}  // namespace strata::machine
