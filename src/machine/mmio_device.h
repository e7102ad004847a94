// MmioDevice: a device register window on the bus, and IrqLine, the wire from a
// device to the interrupt controller. Accesses arrive from any vCPU thread;
// each device serialises its own state.
#pragma once

#include <cstdint>

namespace strata::machine {

class MmioDevice {
 public:
  virtual ~MmioDevice() = default;
  // offset is relative to the device's base; size is 1, 2, 4 or 8.
  // Reads of unimplemented registers return 0, writes to them are ignored.
  virtual uint64_t read(uint64_t offset, unsigned size) = 0;
  virtual void write(uint64_t offset, unsigned size, uint64_t value) = 0;
};

// A level-triggered interrupt line into the PLIC (source numbers 1..).
class IrqLine {
 public:
  virtual ~IrqLine() = default;
  virtual void setLevel(bool asserted) = 0;
};

}  // namespace strata::machine
