// SifiveTest: QEMU's "sifive,test" finisher at 0x100000. M-mode firmware
// (OpenSBI) writes it to power off or reset the machine: 0x5555 = pass/poweroff,
// 0x7777 = reset, (code << 16) | 0x3333 = fail with an exit code.
#pragma once

#include <cstdint>
#include <functional>

#include "machine/mmio_device.h"

namespace strata::machine {

class SifiveTest : public MmioDevice {
 public:
  enum class Request { PowerOff, Reset, Fail };
  using Handler = std::function<void(Request request, uint16_t code)>;

  explicit SifiveTest(Handler handler) : handler_(std::move(handler)) {}

  uint64_t read(uint64_t, unsigned) override { return 0; }
  void write(uint64_t offset, unsigned size, uint64_t value) override;

 private:
  Handler handler_;
};

}  // namespace strata::machine
