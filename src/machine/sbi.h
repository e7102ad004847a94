// The hypervisor's side of the RISC-V Supervisor Binary Interface: a guest
// kernel's ECALLs from S-mode arrive here as hypercalls, as they would reach
// M-mode firmware (OpenSBI) on hardware. Implements SBI 2.0 base, TIME, IPI,
// RFENCE, HSM, SRST, DBCN and the legacy console/timer/shutdown calls.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cpu/hart.h"

namespace strata::machine {

enum class SbiError : int64_t {
  Success = 0,
  Failed = -1,
  NotSupported = -2,
  InvalidParam = -3,
  Denied = -4,
  InvalidAddress = -5,
  AlreadyAvailable = -6,
  AlreadyStarted = -7,
  AlreadyStopped = -8,
};

enum class HartRunState : int64_t { Started = 0, Stopped = 1, StartPending = 2, StopPending = 3 };

enum class SystemResetKind { Shutdown, Reboot };

// What SBI needs from the VM around it.
class SbiPlatform {
 public:
  virtual ~SbiPlatform() = default;
  virtual unsigned hartCount() const = 0;
  virtual cpu::Hart& hart(unsigned id) = 0;
  virtual HartRunState hartState(unsigned id) = 0;
  // Starts a stopped hart in S-mode at `startAddress` with a1 = opaque.
  virtual SbiError startHart(unsigned id, uint64_t startAddress, uint64_t opaque) = 0;
  virtual void resetSystem(SystemResetKind kind, uint32_t reason) = 0;
  virtual void consoleWrite(const uint8_t* data, size_t length) = 0;
  // Reads up to `length` bytes of pending console input; returns the count (0 if none).
  virtual size_t consoleRead(uint8_t* data, size_t length) = 0;
  // Host pointer to guest-physical RAM [gpa, gpa+length), or nullptr.
  virtual uint8_t* guestRam(uint64_t gpa, uint64_t length) = 0;
};

class Sbi {
 public:
  explicit Sbi(SbiPlatform& platform) : platform_(platform) {}

  // Executes the call described by the hart's a7 (extension), a6 (function)
  // and a0-a5, and writes the result to a0 (error) and a1 (value).
  void handleEcall(cpu::Hart& hart);

 private:
  struct Reply {
    SbiError error = SbiError::Success;
    int64_t value = 0;
  };
  Reply dispatch(cpu::Hart& hart, uint64_t extension, uint64_t function, const uint64_t (&args)[6]);
  Reply base(uint64_t function, const uint64_t (&args)[6]);
  Reply timer(cpu::Hart& hart, uint64_t deadline);
  Reply ipi(uint64_t hartMask, uint64_t hartMaskBase);
  Reply remoteFence(cpu::Hart& caller, uint64_t function, uint64_t hartMask, uint64_t hartMaskBase);
  Reply hartManagement(cpu::Hart& hart, uint64_t function, const uint64_t (&args)[6]);
  Reply systemReset(uint64_t type, uint64_t reason);
  Reply debugConsole(uint64_t function, const uint64_t (&args)[6]);
  // Legacy (v0.1) calls return their result in a0 only.
  bool legacy(cpu::Hart& hart, uint64_t extension, const uint64_t (&args)[6]);

  // Calls visit(hartId) for each hart selected by an SBI hart mask; false if a bit names no hart.
  template <typename Visit>
  bool forEachHart(uint64_t hartMask, uint64_t hartMaskBase, Visit visit);

  SbiPlatform& platform_;
};

}  // namespace strata::machine
