// Plic: the SiFive Platform-Level Interrupt Controller of the `virt` board
// ("sifive,plic-1.0.0" / "riscv,plic0"), laid out exactly as in QEMU. Devices
// drive level-triggered source lines; the PLIC arbitrates by priority and drives
// each hart's external interrupt lines (context 2h = M-mode, 2h+1 = S-mode).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "cpu/hart.h"
#include "base/result.h"
#include "base/state_stream.h"
#include "machine/mmio_device.h"

namespace strata::machine {

class Plic : public MmioDevice {
 public:
  using HartLineDriver = std::function<void(unsigned hart, cpu::InterruptBit bit, bool level)>;

  // Register map (offsets from the PLIC base).
  static constexpr uint64_t kPriorityBase = 0x0;
  static constexpr uint64_t kPendingBase = 0x1000;
  static constexpr uint64_t kEnableBase = 0x2000;
  static constexpr uint64_t kEnableStride = 0x80;
  static constexpr uint64_t kContextBase = 0x200000;
  static constexpr uint64_t kContextStride = 0x1000;
  static constexpr uint64_t kThresholdOffset = 0x0;
  static constexpr uint64_t kClaimOffset = 0x4;
  static constexpr uint64_t kMmioSize = 0x600000;
  // Three priority bits as on QEMU virt ("riscv,ndev" sources, priorities 0..7).
  static constexpr uint32_t kMaxPriority = 7;
  // The architectural ceiling: source ids fit one 0x80-byte enable block.
  static constexpr unsigned kMaxSources = 1024;

  // sourceCount includes the reserved source 0, so lines 1..sourceCount-1 exist
  // (QEMU virt: 96 -> "riscv,ndev" = 95). driveHartLine is called with the
  // hart's MEIP/SEIP level whenever a context's output changes; it is called
  // with the PLIC's lock held and must not call back into the Plic.
  Plic(unsigned hartCount, unsigned sourceCount, HartLineDriver driveHartLine);
  ~Plic() override;
  Plic(const Plic&) = delete;
  Plic& operator=(const Plic&) = delete;

  // The wire a device drives; source must be 1..sourceCount-1 (a board wiring
  // mistake otherwise: it is logged and a disconnected line is returned).
  IrqLine& line(unsigned source);

  unsigned hartCount() const { return hartCount_; }
  unsigned sourceCount() const { return sourceCount_; }
  unsigned contextCount() const { return 2 * hartCount_; }

  // Only naturally aligned 32-bit accesses reach registers; others read 0 and
  // are ignored, as the PLIC's registers are 32 bits wide.
  uint64_t read(uint64_t offset, unsigned size) override;
  void write(uint64_t offset, unsigned size, uint64_t value) override;

  // Snapshots: the device's registers and latched state (section "plic").
  // Loading re-drives its output lines from the loaded state.
  void save(StateWriter& out) const;
  Result<void> load(StateReader& in);

 private:
  class SourceLine;

  void setSourceLevel(unsigned source, bool level);
  uint32_t claimLocked(unsigned context);
  void completeLocked(unsigned context, uint32_t source);
  bool enabledLocked(unsigned context, unsigned source) const;
  bool contextWantsInterruptLocked(unsigned context) const;
  void updateOutputsLocked();

  static bool testBit(const std::vector<uint32_t>& words, unsigned bit);
  static void assignBit(std::vector<uint32_t>& words, unsigned bit, bool value);

  const unsigned hartCount_;
  const unsigned sourceCount_;
  const unsigned words_;  // 32-bit words per source bitmap
  HartLineDriver driveHartLine_;
  std::vector<std::unique_ptr<SourceLine>> lines_;  // index = source id
  std::unique_ptr<SourceLine> disconnected_;

  mutable std::mutex mutex_;
  std::vector<uint32_t> priority_;   // per source
  std::vector<uint32_t> level_;      // line asserted by the device
  std::vector<uint32_t> pending_;    // gateway latched a request
  std::vector<uint32_t> claimed_;    // claimed and not yet completed
  std::vector<uint32_t> enable_;     // contextCount * words_
  std::vector<uint32_t> threshold_;  // per context
  std::vector<uint8_t> output_;      // per context: the level last driven
};

}  // namespace strata::machine
