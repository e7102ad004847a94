// GoldfishRtc: the `virt` board's real-time clock ("google,goldfish-rtc"),
// nanoseconds since the Unix epoch. Guest time is the host's CLOCK_REALTIME
// plus an offset that guest writes to TIME_LOW/TIME_HIGH adjust.
// The alarm has no timer of its own: it is checked on every register access
// and whenever the board calls pollAlarm().
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>

#include "base/result.h"
#include "base/state_stream.h"
#include "machine/mmio_device.h"

namespace strata::machine {

class GoldfishRtc : public MmioDevice {
 public:
  // Returns host wall-clock time in nanoseconds since the Unix epoch.
  using HostClock = std::function<uint64_t()>;

  static constexpr uint64_t kMmioSize = 0x1000;
  enum Register : uint64_t {
    kTimeLow = 0x00,  // reading it latches TIME_HIGH
    kTimeHigh = 0x04,
    kAlarmLow = 0x08,  // writing it arms the alarm
    kAlarmHigh = 0x0c,
    kIrqEnabled = 0x10,
    kClearAlarm = 0x14,
    kAlarmStatus = 0x18,
    kClearInterrupt = 0x1c,
  };

  // The IRQ line is driven with the RTC's lock held (it must not call back
  // into the RTC). hostClock defaults to CLOCK_REALTIME.
  explicit GoldfishRtc(IrqLine& irq, HostClock hostClock = hostRealtimeNs);
  GoldfishRtc(const GoldfishRtc&) = delete;
  GoldfishRtc& operator=(const GoldfishRtc&) = delete;

  // Registers are 32 bits wide; other access sizes read 0 and are ignored.
  uint64_t read(uint64_t offset, unsigned size) override;
  void write(uint64_t offset, unsigned size, uint64_t value) override;

  // Fires the alarm if it is armed and due. Optional: call it periodically
  // (e.g. from the VM's I/O loop) to make alarms fire without guest accesses.
  void pollAlarm();
  // The time the guest currently sees, in ns since the epoch.
  uint64_t guestTimeNs() const;

  static uint64_t hostRealtimeNs();

  // Snapshots: the device's registers and latched state (section "rtc").
  // Loading re-drives its output lines from the loaded state.
  void save(StateWriter& out) const;
  Result<void> load(StateReader& in);

 private:
  uint64_t guestTimeLocked() const { return hostClock_() + offset_; }
  void checkAlarmLocked();
  void updateIrqLocked();

  IrqLine& irq_;
  HostClock hostClock_;

  mutable std::mutex mutex_;
  uint64_t offset_ = 0;  // guest time - host time, modulo 2^64
  uint32_t timeHighLatch_ = 0;
  uint64_t alarmNs_ = 0;
  bool alarmArmed_ = false;
  bool irqEnabled_ = false;
  bool irqPending_ = false;
  bool irqAsserted_ = false;
};

}  // namespace strata::machine
