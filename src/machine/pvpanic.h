// PvPanic: QEMU's paravirtual panic notifier on MMIO ("qemu,pvpanic-mmio").
// One byte register: reads give the events the host understands, a guest
// write reports an event; a panic is passed to the VMM through a callback.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>

#include "machine/mmio_device.h"

namespace strata::machine {

class PvPanic : public MmioDevice {
 public:
  static constexpr uint64_t kMmioSize = 2;
  static constexpr uint8_t kPanicked = 0x01;
  static constexpr uint8_t kCrashLoaded = 0x02;  // a kdump kernel took over
  static constexpr uint8_t kSupportedEvents = kPanicked | kCrashLoaded;

  // onGuestPanic runs on the reporting vCPU's thread, with no lock held.
  explicit PvPanic(std::function<void()> onGuestPanic);

  uint64_t read(uint64_t offset, unsigned size) override;
  void write(uint64_t offset, unsigned size, uint64_t value) override;

  unsigned panicCount() const { return panics_.load(); }
  unsigned crashLoadedCount() const { return crashLoads_.load(); }

 private:
  std::function<void()> onGuestPanic_;
  std::atomic<unsigned> panics_{0};
  std::atomic<unsigned> crashLoads_{0};
};

}  // namespace strata::machine
