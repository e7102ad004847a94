// The physical memory map and interrupt numbers of strata's `virt` board. They
// match QEMU's riscv `virt` machine so stock kernels and device trees behave
// the same on both.
#pragma once

#include <cstdint>

namespace strata::machine::virt {

inline constexpr uint64_t kTestBase = 0x100000;  // sifive,test finisher
inline constexpr uint64_t kTestSize = 0x1000;
inline constexpr uint64_t kRtcBase = 0x101000;
inline constexpr uint64_t kRtcSize = 0x1000;
inline constexpr uint64_t kPvPanicBase = 0x104000;
inline constexpr uint64_t kPvPanicSize = 0x2;
inline constexpr uint64_t kVmGenIdBase = 0x105000;  // strata's own (QEMU puts vmgenid in ACPI memory)
inline constexpr uint64_t kVmGenIdSize = 0x10;
inline constexpr uint64_t kClintBase = 0x2000000;
inline constexpr uint64_t kClintSize = 0x10000;
inline constexpr uint64_t kPlicBase = 0xc000000;
inline constexpr uint64_t kPlicSize = 0x600000;
inline constexpr uint64_t kUartBase = 0x10000000;
inline constexpr uint64_t kUartSize = 0x100;
inline constexpr uint64_t kVirtioBase = 0x10001000;
inline constexpr uint64_t kVirtioStride = 0x1000;
inline constexpr unsigned kVirtioSlots = 8;
inline constexpr uint64_t kRamBase = 0x80000000;

inline constexpr unsigned kVirtioIrqFirst = 1;  // slot i uses IRQ 1 + i
inline constexpr unsigned kUartIrq = 10;
inline constexpr unsigned kRtcIrq = 11;
inline constexpr unsigned kPlicSources = 96;

inline constexpr unsigned kMaxHarts = 8;
inline constexpr uint64_t kUartClockHz = 3686400;

inline uint64_t virtioSlotBase(unsigned slot) { return kVirtioBase + kVirtioStride * slot; }

}  // namespace strata::machine::virt
