#include "machine/sifive_test.h"

namespace strata::machine {

void SifiveTest::write(uint64_t offset, unsigned size, uint64_t value) {
  if (offset != 0 || size < 2) return;  // OpenSBI writes 16 bits, others 32
  uint16_t status = value & 0xffff;
  uint16_t code = (value >> 16) & 0xffff;
  switch (status) {
    case 0x5555: handler_(Request::PowerOff, 0); break;
    case 0x7777: handler_(Request::Reset, 0); break;
    case 0x3333: handler_(Request::Fail, code); break;
    default: break;  // unknown commands are ignored, as on QEMU
  }
}

}  // namespace strata::machine
