// Clint: the SiFive core-local interruptor of the `virt` board ("sifive,clint0"):
// per-hart software interrupt (msip) and M-mode timer compare (mtimecmp)
// registers plus the read-only platform timer (mtime). Each hart is reached
// through a ClintTarget; HartClintTarget adapts a cpu::Hart.
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

// What the CLINT drives in one hart. Implementations must be thread-safe and
// must not call back into the Clint.
class ClintTarget {
 public:
  virtual ~ClintTarget() = default;
  virtual void setSoftwareInterrupt(bool level) = 0;  // mip.MSIP
  virtual void setTimerCompare(uint64_t value) = 0;   // MTIP pends while mtime >= value
  virtual uint64_t timerCompare() const = 0;
};

// Adapts a hart with cpu::Hart's thread-safe calls. A template, so that the
// machine library references Hart symbols only where a board wires real harts
// (GCC would otherwise devirtualise speculatively into them inside clint.cpp).
template <typename HartType = cpu::Hart>
class HartClintTarget : public ClintTarget {
 public:
  explicit HartClintTarget(HartType& hart) : hart_(hart) {}
  void setSoftwareInterrupt(bool level) override {
    hart_.setInterruptLine(cpu::kMachineSoftware, level);
    hart_.kick();
  }
  void setTimerCompare(uint64_t value) override {
    hart_.setMachineTimerCompare(value);
    hart_.kick();
  }
  uint64_t timerCompare() const override { return hart_.machineTimerCompare(); }

 private:
  HartType& hart_;
};

class Clint : public MmioDevice {
 public:
  static constexpr uint64_t kMmioSize = 0x10000;
  static constexpr uint64_t kMsipBase = 0x0;         // 4 bytes per hart, bit 0
  static constexpr uint64_t kMtimecmpBase = 0x4000;  // 8 bytes per hart
  static constexpr uint64_t kMtime = 0xbff8;         // 8 bytes
  static constexpr unsigned kMaxHarts = 4095;        // the register map's limit

  // timeNow returns the platform timer in cpu::kTimebaseHz ticks.
  // Usually called with std::vector<cpu::Hart*>.
  template <typename HartType>
  Clint(std::vector<HartType*> harts, std::function<uint64_t()> timeNow)
      : Clint(adaptHarts(harts), std::move(timeNow)) {}
  // The targets must outlive the Clint.
  Clint(std::vector<ClintTarget*> targets, std::function<uint64_t()> timeNow);
  Clint(const Clint&) = delete;
  Clint& operator=(const Clint&) = delete;

  // Accesses of 1, 2, 4 or 8 bytes that fall inside one register work (so
  // 32-bit halves of mtimecmp and mtime do). mtime is read-only here: the
  // platform timer is shared with the harts' `time` CSR and is not guest-
  // settable, so writes to it are ignored. Everything else reads 0.
  uint64_t read(uint64_t offset, unsigned size) override;
  void write(uint64_t offset, unsigned size, uint64_t value) override;

  bool softwareInterruptPending(unsigned hart) const;

  // Snapshots: the device's registers and latched state (section "clint").
  // Loading re-drives its output lines from the loaded state.
  void save(StateWriter& out) const;
  Result<void> load(StateReader& in);

 private:
  struct OwnedTargets {
    std::vector<std::unique_ptr<ClintTarget>> owned;
    std::vector<ClintTarget*> pointers;
  };
  template <typename HartType>
  static OwnedTargets adaptHarts(const std::vector<HartType*>& harts) {
    OwnedTargets result;
    for (HartType* hart : harts) {
      result.owned.push_back(std::make_unique<HartClintTarget<HartType>>(*hart));
      result.pointers.push_back(result.owned.back().get());
    }
    return result;
  }
  Clint(OwnedTargets targets, std::function<uint64_t()> timeNow);

  // Locates the register holding [offset, offset + size): its base offset,
  // width and hart; false if there is none.
  struct RegisterRef {
    enum Kind { Msip, Mtimecmp, Mtime } kind;
    uint64_t base;
    unsigned width;
    unsigned hart;
  };
  bool locate(uint64_t offset, unsigned size, RegisterRef& ref) const;
  uint64_t readRegisterLocked(const RegisterRef& ref) const;

  std::vector<std::unique_ptr<ClintTarget>> ownedTargets_;
  std::vector<ClintTarget*> targets_;
  std::function<uint64_t()> timeNow_;

  mutable std::mutex mutex_;  // makes partial-register read-modify-writes atomic
  std::vector<uint8_t> msip_;
};

}  // namespace strata::machine
