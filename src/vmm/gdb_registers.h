// A hart's registers as GDB numbers them for RISC-V (x0-x31, pc, f0-f31, then
// CSRs at 65 + their number, priv at 65 + 4096), the target description XML
// that tells gdb-multiarch so, and reading/writing them as little-endian hex.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "cpu/hart.h"

namespace strata::vmm {

// registers in the 'g' packet: x0-x31 then pc (the rest are read one at a time with 'p').
inline constexpr unsigned kGdbGeneralRegisters = 33;

// The target.xml gdb reads through qXfer:features:read.
const std::string& gdbTargetXml();

// Hex of register `number`; nullopt for a number the description does not have.
// A register the hart cannot read now comes back as 'x' digits (unavailable).
std::optional<std::string> readGdbRegister(const cpu::Hart& hart, unsigned number);
// False for an unknown or read-only register or a value of the wrong width.
bool writeGdbRegister(cpu::Hart& hart, unsigned number, std::string_view hex);

}  // namespace strata::vmm
